"""Fixtures-as-functions shared by the orders tests: tokens, bodies, contexts, snapshots."""

from __future__ import annotations

from typing import Any

from django.core.cache import cache
from rest_framework.test import APIClient

from orchestration import BaseOrchestrator, Step
from orchestration.testing import make_context, run_step
from orders.models import IdempotencyRecord, Order, OrderItem, Product
from orders.orchestrators import CreateOrder
from orders.types import (
    CancelOrderContext,
    CancelOrderInput,
    CreateOrderContext,
    CreateOrderInput,
    OrderLine,
)

PASSWORD = "correct-horse-battery"


def obtain_token(client: APIClient, username: str, password: str = PASSWORD) -> str:
    """The access token from the real obtain endpoint (its throttle state is cleared first)."""
    cache.clear()
    response = client.post(
        "/api/auth/token/", {"username": username, "password": password}, format="json"
    )
    assert response.status_code == 200, response.content
    return response.json()["access"]


def order_body(*lines: tuple[Product, int], token: str = "tok_visa") -> dict[str, Any]:
    return {
        "items": [{"product": product.pk, "quantity": quantity} for product, quantity in lines],
        "payment_token": token,
    }


def stock_levels() -> dict[int, int]:
    return dict(Product.objects.values_list("pk", "stock"))


def assert_nothing_written(stock_before: dict[int, int]) -> None:
    """No order, item or idempotency key was stored and every stock level is as before."""
    assert Order.objects.count() == 0
    assert OrderItem.objects.count() == 0
    assert IdempotencyRecord.objects.count() == 0
    assert stock_levels() == stock_before


def step_named(orchestrator: type[BaseOrchestrator[Any, Any, Any]], name: str) -> Step[Any]:
    """The step as declared in the pipeline, flags and retry policy included."""
    return next(step for step in orchestrator.get_pipeline() if step.name == name)


def place_paid_order(user: Any, *lines: tuple[Product, int]) -> Order:
    """A paid order through the real pipeline (stock taken, charge captured)."""
    result = CreateOrder().execute(CreateOrderInput(data=order_body(*lines)), user=user)
    assert result.success, result.error
    assert result.data is not None
    return result.data


def order_context(user: Any, *lines: tuple[Product, int], **fields: Any) -> CreateOrderContext:
    """A CreateOrder context as validate_order leaves it."""
    return make_context(
        CreateOrderContext,
        input=CreateOrderInput(data=order_body(*lines), idempotency_key=fields.pop("key", None)),
        user=user,
        lines=tuple(OrderLine(product.pk, quantity) for product, quantity in lines),
        payment_token="tok_visa",
        **fields,
    )


def placed_context(user: Any, *lines: tuple[Product, int]) -> CreateOrderContext:
    """A context as it is after reserve_stock and create_order."""
    ctx = order_context(user, *lines, products={product.pk: product for product, _ in lines})
    return run_step(step_named(CreateOrder, "create_order"), ctx).ctx


def cancel_context(user: Any, target: Order, **fields: Any) -> CancelOrderContext:
    return make_context(
        CancelOrderContext, input=CancelOrderInput(order_id=target.pk), user=user, **fields
    )
