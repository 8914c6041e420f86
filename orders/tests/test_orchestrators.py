"""CreateOrder and CancelOrder end to end, on the real database, with the fake gateway."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.db import OperationalError, connection, connections

from orchestration import ServiceUnavailable, Step
from orchestration.registry import registered
from orchestration.testing import isolated_registry
from orders.models import Order, OrderItem, Product
from orders.orchestrators import GATEWAY_RETRY, CancelOrder, CreateOrder
from orders.payments import FakeGateway
from orders.tests.support import (
    assert_nothing_written,
    order_body,
    place_paid_order,
    step_named,
    stock_levels,
)
from orders.types import CancelOrderInput, CreateOrderContext, CreateOrderInput


def lose_the_database(ctx: CreateOrderContext) -> CreateOrderContext:
    raise OperationalError("server closed the connection unexpectedly")


with isolated_registry():  # a variant for these tests, never listed or on a dashboard

    class CreateOrderFailingAfterCharge(CreateOrder):
        """CreateOrder whose write after the charge fails, as when the database goes away."""

        metric_name = "create_order_failing_after_charge"
        pipeline = tuple(
            Step("mark_paid", lose_the_database) if step.name == "mark_paid" else step
            for step in CreateOrder.pipeline
        )


@pytest.mark.parametrize("orchestrator", [CreateOrder, CancelOrder])
def test_every_step_is_named_after_its_operation(orchestrator: Any) -> None:
    # Step name = operation name = metric label: one name from a dashboard to the code.
    for step in orchestrator.get_pipeline():
        assert step.name == step.operation.__name__


def create(user: Any, *lines: tuple[Product, int], token: str = "tok_visa") -> Any:
    return CreateOrder().execute(CreateOrderInput(data=order_body(*lines, token=token)), user=user)


def cancel(user: Any, order_id: int) -> Any:
    return CancelOrder().execute(CancelOrderInput(order_id=order_id), user=user)


def test_pipelines_are_registered_with_their_flags() -> None:
    assert {CreateOrder, CancelOrder} <= set(registered())
    charge = step_named(CreateOrder, "charge_payment")
    assert charge.critical
    assert charge.retry is not None
    assert charge.compensate is not None
    for orchestrator, name in (
        (CreateOrder, "send_confirmation"),
        (CancelOrder, "notify_cancellation"),
    ):
        step = step_named(orchestrator, name)
        assert not step.critical
        assert step.after_commit
    assert not step_named(CreateOrder, "track_analytics").critical


# -- CreateOrder --------------------------------------------------------------------


@pytest.mark.django_db
def test_create_order_places_and_pays_the_order(
    user: Any,
    keyboard: Product,
    cable: Product,
    gateway: FakeGateway,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        result = create(user, (keyboard, 2), (cable, 1))

    assert result.success, result.error
    order = Order.objects.get()
    assert result.data == order
    assert (order.owner, order.status, order.total) == (user, Order.Status.PAID, Decimal("187.99"))
    assert gateway.charges[order.payment_reference].amount == Decimal("187.99")
    assert stock_levels() == {keyboard.pk: 3, cable.pk: 99}
    assert result.step("claim_idempotency_key").status == "skipped"
    assert [message.to for message in mail.outbox] == [[user.email]]


@pytest.mark.django_db
def test_declined_payment_writes_nothing(
    user: Any, keyboard: Product, gateway: FakeGateway
) -> None:
    before = stock_levels()

    result = create(user, (keyboard, 2), token="tok_declined")

    assert not result.success
    assert result.error is not None
    assert (result.error.step, result.error.code, result.error.status) == (
        "charge_payment",
        "payment_declined",
        402,
    )
    assert result.step("charge_payment").attempts == 1
    assert_nothing_written(before)
    assert gateway.charges == {}


@pytest.mark.django_db
def test_unavailable_gateway_is_retried_then_writes_nothing(
    user: Any, keyboard: Product, gateway: FakeGateway
) -> None:
    before = stock_levels()

    result = create(user, (keyboard, 1), token="tok_unavailable")

    assert result.error is not None
    assert (result.error.code, result.error.status) == ("payment_gateway_unavailable", 503)
    assert (
        result.step("charge_payment").attempts
        == step_named(CreateOrder, "charge_payment").retry.attempts
    )  # type: ignore[union-attr]
    assert result.step("charge_payment").attempts > 1
    assert_nothing_written(before)


@pytest.mark.django_db
def test_failure_after_the_charge_refunds_it(
    user: Any, keyboard: Product, gateway: FakeGateway
) -> None:
    before = stock_levels()

    result = CreateOrderFailingAfterCharge().execute(
        CreateOrderInput(data=order_body((keyboard, 2))), user=user
    )

    assert result.error is not None
    assert (result.error.step, result.error.code) == ("mark_paid", "database_unavailable")
    [charge] = gateway.charges.values()
    assert gateway.refunds[charge.id].amount == charge.amount == Decimal("178.00")
    assert result.step("charge_payment").status == "compensated"
    assert_nothing_written(before)


@pytest.mark.django_db
def test_out_of_stock_writes_nothing(
    user: Any, keyboard: Product, cable: Product, gateway: FakeGateway
) -> None:
    before = stock_levels()

    result = create(user, (cable, 1), (keyboard, 6))

    assert result.error is not None
    assert (result.error.step, result.error.code, result.error.status) == (
        "reserve_stock",
        "out_of_stock",
        409,
    )
    assert_nothing_written(before)
    assert gateway.charges == {}


# -- CancelOrder --------------------------------------------------------------------


@pytest.mark.django_db
def test_cancel_order_restocks_and_refunds(
    user: Any,
    keyboard: Product,
    gateway: FakeGateway,
    django_capture_on_commit_callbacks: Any,
) -> None:
    order = place_paid_order(user, (keyboard, 3))

    with django_capture_on_commit_callbacks(execute=True):
        result = cancel(user, order.pk)

    assert result.success, result.error
    order.refresh_from_db()
    assert order.status == Order.Status.CANCELLED
    assert order.refund_reference == gateway.refunds[order.payment_reference].id
    assert stock_levels() == {keyboard.pk: 5}
    assert mail.outbox[-1].subject == f"Order #{order.pk} cancelled"


@pytest.mark.django_db
def test_cancelling_twice_is_a_conflict_and_refunds_once(
    user: Any, keyboard: Product, gateway: FakeGateway
) -> None:
    order = place_paid_order(user, (keyboard, 1))
    assert cancel(user, order.pk).success

    again = cancel(user, order.pk)

    assert again.error is not None
    assert (again.error.step, again.error.code) == ("check_state", "order_not_cancellable")
    assert len(gateway.refunds) == 1
    assert stock_levels() == {keyboard.pk: 5}


def refuse_refund(self: FakeGateway, **kwargs: Any) -> Any:
    raise ServiceUnavailable("processor down", code="payment_gateway_unavailable")


@pytest.mark.django_db
def test_cancel_with_the_gateway_down_changes_nothing(
    user: Any, keyboard: Product, monkeypatch: pytest.MonkeyPatch
) -> None:
    order = place_paid_order(user, (keyboard, 2))
    monkeypatch.setattr(FakeGateway, "refund", refuse_refund)

    result = cancel(user, order.pk)

    assert result.error is not None
    assert (result.error.step, result.error.status) == ("refund_order", 503)
    assert result.step("refund_order").attempts == GATEWAY_RETRY.attempts
    order.refresh_from_db()
    assert (order.status, order.refund_reference) == (Order.Status.PAID, "")
    assert stock_levels() == {keyboard.pk: 3}


# -- concurrency (PostgreSQL) -------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_orders_never_oversell(make_product: Any) -> None:
    if connection.vendor != "postgresql":
        pytest.skip(
            "SQLite has no row locks (select_for_update is a no-op) and serialises "
            "writers with one database lock, so this would not test the locking."
        )
    buyers, units = 10, 3
    product = make_product(stock=units)
    users = [
        get_user_model().objects.create_user(f"buyer{n}", f"buyer{n}@example.com", "pw")
        for n in range(buyers)
    ]
    start = threading.Barrier(buyers, timeout=30)

    def buy(buyer: Any) -> str:
        try:
            start.wait()
            result = create(buyer, (product, 1))
            return "sold" if result.success else result.error.code
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=buyers) as pool:
        outcomes = list(pool.map(buy, users))

    assert sorted(outcomes) == ["out_of_stock"] * (buyers - units) + ["sold"] * units
    product.refresh_from_db()
    assert product.stock == 0
    assert sum(OrderItem.objects.values_list("quantity", flat=True)) == units
    assert Order.objects.filter(status=Order.Status.PAID).count() == units
