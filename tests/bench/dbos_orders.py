"""The same ``POST /api/orders/`` as a DBOS Transact workflow, for the end-to-end benchmark.

A durable-execution engine makes the whole job durable instead of journaling
one effect: each step's result is checkpointed in DBOS's system database (here
the benchmark's own PostgreSQL database, schema ``dbos``) before the next step
runs, and a workflow interrupted by a crash is resumed from its last
checkpoint. Steps cannot share a database transaction, so the order is
written pending in one step and marked paid in another, with saga
compensations (refund, release the stock) when a later step fails: the way
one writes this job for DBOS.

Validation (the serializer) runs in the request, as in the other two
endpoints; the workflow gets plain JSON-able arguments and its id is a fresh
uuid per request (the benchmark sends no ``Idempotency-Key``). Each gunicorn
worker launches DBOS on its first request, with an executor id of its own so
that no worker recovers another's workflows.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from decimal import Decimal
from typing import Any

from dbos import DBOS, SetWorkflowID
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Case, F, When, prefetch_related_objects
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from orchestration import (
    Conflict,
    NotAuthenticated,
    OrchestrationError,
    ServiceUnavailable,
    ValidationFailed,
)
from orchestration.context import current_request_id, new_request_id
from orders.models import Order, OrderItem, Product
from orders.notifications import send_order_email
from orders.payments import get_gateway
from orders.serializers import CreateOrderSerializer, OrderSerializer
from orders.views import OrderListCreateView

analytics = logging.getLogger("orders.analytics")
CHARGE_ATTEMPTS = 3
CHARGE_BACKOFF = 0.1

_launched = threading.Lock()
_started = False


def system_database_url() -> str:
    database = settings.DATABASES["default"]
    return (
        f"postgresql://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}"
    )


def ensure_launched() -> None:
    global _started
    with _launched:
        if not _started:
            DBOS(
                config={
                    "name": "orders-bench",
                    "system_database_url": system_database_url(),
                    "executor_id": f"bench-{os.getpid()}",
                    "log_level": "WARNING",
                }
            )
            DBOS.launch()
            _started = True


@DBOS.step()
def reserve_and_create(user_id: int, wanted: dict[str, int]) -> dict[str, Any]:
    """``reserve_stock`` and ``create_order``: one local transaction, the order pending."""
    quantities = {int(pk): quantity for pk, quantity in wanted.items()}
    with transaction.atomic():
        products = list(
            Product.objects.select_for_update()
            .filter(pk__in=quantities, active=True)
            .order_by("pk")
        )
        locked = {product.pk: product for product in products}
        if set(quantities) - set(locked):
            raise Conflict("Some products were withdrawn from sale.", code="product_unavailable")
        if any(product.stock < quantities[product.pk] for product in products):
            raise Conflict("Not enough stock for this order.", code="out_of_stock")
        try:
            Product.objects.filter(pk__in=locked).update(
                stock=Case(*(When(pk=pk, then=F("stock") - q) for pk, q in quantities.items()))
            )
        except IntegrityError:
            raise Conflict("Not enough stock for this order.", code="out_of_stock") from None
        items = [
            OrderItem(
                product=locked[pk],
                quantity=quantity,
                unit_price=locked[pk].price,
                line_total=locked[pk].price * quantity,
            )
            for pk, quantity in quantities.items()
        ]
        order = Order.objects.create(
            owner_id=user_id,
            status=Order.Status.PENDING,
            total=sum((item.line_total for item in items), start=Decimal("0.00")),
        )
        for item in items:
            item.order = order
        OrderItem.objects.bulk_create(items)
    return {"order_id": order.pk, "total": str(order.total)}


@DBOS.step()
def charge_payment(total: str, token: str, key: str) -> dict[str, str]:
    gateway = get_gateway()
    for attempt in range(1, CHARGE_ATTEMPTS + 1):
        try:
            charge = gateway.charge(
                amount=Decimal(total),
                token=token,
                idempotency_key=key,
                timeout=settings.PAYMENT_TIMEOUT,
            )
            return {"id": charge.id, "amount": str(charge.amount)}
        except ServiceUnavailable:
            if attempt == CHARGE_ATTEMPTS:
                raise
            time.sleep(CHARGE_BACKOFF * 2 ** (attempt - 1))
    raise AssertionError("unreachable")


@DBOS.step()
def mark_paid(order_id: int, charge_id: str) -> None:
    Order.objects.filter(pk=order_id).update(status=Order.Status.PAID, payment_reference=charge_id)


@DBOS.step()
def refund_charge(charge: dict[str, str]) -> None:
    get_gateway().refund(
        charge_id=charge["id"], amount=Decimal(charge["amount"]), timeout=settings.PAYMENT_TIMEOUT
    )


@DBOS.step()
def release_order(order_id: int, wanted: dict[str, int]) -> None:
    """Compensation of ``reserve_and_create``: the stock back, the pending order gone."""
    with transaction.atomic():
        for pk, quantity in wanted.items():
            Product.objects.filter(pk=int(pk)).update(stock=F("stock") + quantity)
        Order.objects.filter(pk=order_id).delete()


@DBOS.step()
def send_confirmation(order_id: int) -> str | None:
    """Best effort: the warning's code, or None."""
    order = Order.objects.select_related("owner").get(pk=order_id)
    if not order.owner.email:
        return None
    lines = "\n".join(
        f"  {item.quantity} x {item.product.name}" for item in order.items.select_related("product")
    )
    try:
        send_order_email(
            order=order,
            subject=f"Order #{order.pk} confirmed",
            body=f"Thank you for your order #{order.pk}.\n\n{lines}\n\nTotal: {order.total}\n",
            timeout=None,
        )
    except ServiceUnavailable as exc:
        return exc.code
    return None


@DBOS.step()
def track_analytics(order_id: int, lines: int, units: int, total: str) -> None:
    analytics.info(
        "order_placed order=%s lines=%d units=%d total=%s", order_id, lines, units, total
    )


@DBOS.workflow()
def create_order_workflow(user_id: int, wanted: dict[str, int], token: str) -> dict[str, Any]:
    placed = reserve_and_create(user_id, wanted)
    try:
        charge = charge_payment(placed["total"], token, DBOS.workflow_id or "")
    except Exception:
        release_order(placed["order_id"], wanted)
        raise
    try:
        mark_paid(placed["order_id"], charge["id"])
    except Exception:
        refund_charge(charge)
        release_order(placed["order_id"], wanted)
        raise
    warning = send_confirmation(placed["order_id"])
    track_analytics(placed["order_id"], len(wanted), sum(wanted.values()), placed["total"])
    return {"order_id": placed["order_id"], "warning": warning}


class DBOSCreateOrderView(APIView):
    parser_classes = OrderListCreateView.parser_classes

    def post(self, request: Request) -> Response:
        ensure_launched()
        request_id = current_request_id.get() or new_request_id()
        started = time.perf_counter()
        try:
            if not request.user.is_authenticated:
                raise NotAuthenticated("Sign in to place an order.")
            serializer = CreateOrderSerializer(data=request.data)
            if not serializer.is_valid():
                raise ValidationFailed("The order is invalid.", details=serializer.errors)
            wanted = {
                str(item["product"]): item["quantity"]
                for item in serializer.validated_data["items"]
            }
            with SetWorkflowID(uuid.uuid4().hex):
                outcome = create_order_workflow(
                    request.user.pk, wanted, serializer.validated_data["payment_token"]
                )
        except OrchestrationError as exc:
            body = {
                "success": False,
                "error": {"step": None, "code": exc.code, "message": exc.message},
                "request_id": request_id,
            }
            return Response(body, status=exc.status)
        order = Order.objects.get(pk=outcome["order_id"])
        prefetch_related_objects([order], "items__product")
        warnings = [] if outcome["warning"] is None else [{"code": outcome["warning"]}]
        body = {
            "success": True,
            "data": OrderSerializer(order).data,
            "duration": (time.perf_counter() - started) * 1000,
            "metrics": {},
            "warnings": warnings,
            "request_id": request_id,
        }
        return Response(body, status=status.HTTP_201_CREATED)
