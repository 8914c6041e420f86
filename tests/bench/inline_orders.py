"""The baseline of the end-to-end benchmark: ``POST /api/orders/`` written by hand.

This is the "week 8" view the orchestration pattern replaces: the same
serializer, the same queries (row locks, stock update, order and items,
``mark_paid``), the same gateway calls with a retry on transient errors and a
refund when a later stage fails, the email and analytics after commit, each
stage timed into the engine's step histogram, and the same envelope in the
response. It lives in the benchmark package only (``tests/bench/urls.py``
mounts it next to the real API); the benchmark sends no ``Idempotency-Key``,
so the key handling of the real view is left out here.
"""

from __future__ import annotations

import logging
import time
import uuid
from decimal import Decimal
from typing import Any

from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Case, F, When, prefetch_related_objects
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from orchestration import (
    Conflict,
    NotAuthenticated,
    OrchestrationError,
    PermissionDenied,
    ServiceUnavailable,
    ValidationFailed,
)
from orchestration.context import current_request_id, new_request_id
from orchestration.metrics import STEP_DURATION
from orders.models import Order, OrderItem, Product
from orders.notifications import send_order_email
from orders.payments import get_gateway
from orders.serializers import CreateOrderSerializer, OrderSerializer
from orders.views import OrderListCreateView

logger = logging.getLogger("orders")
analytics = logging.getLogger("orders.analytics")

NAME = "inline_create_order"
STAGES = (
    "validate_order",
    "check_permissions",
    "reserve_stock",
    "create_order",
    "charge_payment",
    "mark_paid",
    "send_confirmation",
    "track_analytics",
)
#: Label children resolved once, as a careful engineer would.
OBSERVE_OK = {stage: STEP_DURATION.labels(NAME, stage, "ok") for stage in STAGES}
OBSERVE_FAILED = {stage: STEP_DURATION.labels(NAME, stage, "failed") for stage in STAGES}
CHARGE_ATTEMPTS = 3
CHARGE_BACKOFF = 0.1


class InlineCreateOrderView(APIView):
    """Place and pay an order, every stage inline."""

    parser_classes = OrderListCreateView.parser_classes

    def post(self, request: Request) -> Response:
        request_id = current_request_id.get() or new_request_id()
        started = time.perf_counter()
        timings: dict[str, float] = {}
        warnings: list[dict[str, Any]] = []
        # Filled in after the commit too (the email and analytics stages).
        self.timings, self.warnings = timings, warnings
        stage = "validate_order"
        charge = None
        gateway = get_gateway()

        def done(name: str, stage_started: float) -> None:
            elapsed = time.perf_counter() - stage_started
            OBSERVE_OK[name].observe(elapsed)
            timings[name] = elapsed * 1000

        try:
            with transaction.atomic():
                stage_started = time.perf_counter()
                serializer = CreateOrderSerializer(data=request.data)
                if not serializer.is_valid():
                    raise ValidationFailed("The order is invalid.", details=serializer.errors)
                wanted = {
                    item["product"]: item["quantity"] for item in serializer.validated_data["items"]
                }
                token = serializer.validated_data["payment_token"]
                done(stage, stage_started)

                stage, stage_started = "check_permissions", time.perf_counter()
                user = request.user
                if user is None or not user.is_authenticated:
                    raise NotAuthenticated("Sign in to place an order.")
                if not user.is_active:
                    raise PermissionDenied("This account is disabled and cannot place orders.")
                done(stage, stage_started)

                stage, stage_started = "reserve_stock", time.perf_counter()
                products = list(
                    Product.objects.select_for_update()
                    .filter(pk__in=wanted, active=True)
                    .order_by("pk")
                )
                locked = {product.pk: product for product in products}
                withdrawn = sorted(set(wanted) - set(locked))
                if withdrawn:
                    raise Conflict(
                        "Some products were withdrawn from sale while the order was placed.",
                        code="product_unavailable",
                        details={"products": withdrawn},
                    )
                short = [
                    {"product": p.pk, "requested": wanted[p.pk], "available": p.stock}
                    for p in products
                    if p.stock < wanted[p.pk]
                ]
                if short:
                    raise Conflict(
                        "Not enough stock for this order.",
                        code="out_of_stock",
                        details={"items": short},
                    )
                try:
                    Product.objects.filter(pk__in=locked).update(
                        stock=Case(*(When(pk=pk, then=F("stock") - q) for pk, q in wanted.items()))
                    )
                except IntegrityError:
                    raise Conflict(
                        "Not enough stock for this order.", code="out_of_stock"
                    ) from None
                for product in products:
                    product.stock -= wanted[product.pk]
                done(stage, stage_started)

                stage, stage_started = "create_order", time.perf_counter()
                items = [
                    OrderItem(
                        product=locked[pk],
                        quantity=quantity,
                        unit_price=locked[pk].price,
                        line_total=locked[pk].price * quantity,
                    )
                    for pk, quantity in wanted.items()
                ]
                order = Order.objects.create(
                    owner=user,
                    status=Order.Status.PENDING,
                    total=sum((item.line_total for item in items), start=Decimal("0.00")),
                )
                for item in items:
                    item.order = order
                OrderItem.objects.bulk_create(items)
                done(stage, stage_started)

                stage, stage_started = "charge_payment", time.perf_counter()
                charge_key = self.charge_key(request_id, user)
                for attempt in range(1, CHARGE_ATTEMPTS + 1):
                    try:
                        charge = gateway.charge(
                            amount=order.total, token=token, idempotency_key=charge_key
                        )
                        break
                    except ServiceUnavailable:
                        if attempt == CHARGE_ATTEMPTS:
                            raise
                        time.sleep(CHARGE_BACKOFF * 2 ** (attempt - 1))
                done(stage, stage_started)

                stage, stage_started = "mark_paid", time.perf_counter()
                order.status = Order.Status.PAID
                order.payment_reference = charge.id
                order.save(update_fields=["status", "payment_reference", "updated"])
                done(stage, stage_started)

                self.before_commit(order, wanted, locked)
        except OrchestrationError as exc:
            OBSERVE_FAILED[stage].observe(time.perf_counter() - stage_started)
            self.refund(charge)
            return self.failure(exc.status, stage, exc.code, exc.message, exc.details, request_id)
        except DatabaseError:
            logger.warning("database unavailable in %s", stage)
            self.refund(charge)
            return self.failure(
                503, stage, "database_unavailable", "The database is unavailable.", {}, request_id
            )
        prefetch_related_objects([order], "items__product")
        body = {
            "success": True,
            "data": OrderSerializer(order).data,
            "duration": (time.perf_counter() - started) * 1000,
            "metrics": timings,
            "warnings": warnings,
            "request_id": request_id,
        }
        return Response(body, status=status.HTTP_201_CREATED)

    def charge_key(self, request_id: str, user: Any) -> str:
        """The gateway's idempotency key of this request's charge."""
        return uuid.uuid4().hex

    def before_commit(
        self, order: Order, wanted: dict[int, int], products: dict[int, Product]
    ) -> None:
        """The last thing in the transaction: here, the email and analytics after the commit."""
        transaction.on_commit(lambda: self.after_commit(order, wanted, products))

    def refund(self, charge: Any) -> None:
        """A later stage failed: give the money back, if any was taken."""
        if charge is not None:
            get_gateway().refund(charge_id=charge.id, amount=charge.amount)

    def after_commit(
        self, order: Order, wanted: dict[int, int], products: dict[int, Product]
    ) -> None:
        timings, warnings = self.timings, self.warnings
        stage_started = time.perf_counter()
        if order.owner.email:
            lines = "\n".join(f"  {q} x {products[pk].name}" for pk, q in wanted.items())
            try:
                send_order_email(
                    order=order,
                    subject=f"Order #{order.pk} confirmed",
                    body=(
                        f"Thank you for your order #{order.pk}.\n\n{lines}\n\n"
                        f"Total: {order.total}\n"
                    ),
                    timeout=None,
                )
            except ServiceUnavailable as exc:
                OBSERVE_FAILED["send_confirmation"].observe(time.perf_counter() - stage_started)
                warnings.append(
                    {"step": "send_confirmation", "code": exc.code, "message": exc.message}
                )
            else:
                elapsed = time.perf_counter() - stage_started
                OBSERVE_OK["send_confirmation"].observe(elapsed)
                timings["send_confirmation"] = elapsed * 1000
        stage_started = time.perf_counter()
        analytics.info(
            "order_placed order=%s lines=%d units=%d total=%s",
            order.pk,
            len(wanted),
            sum(wanted.values()),
            order.total,
        )
        elapsed = time.perf_counter() - stage_started
        OBSERVE_OK["track_analytics"].observe(elapsed)
        timings["track_analytics"] = elapsed * 1000

    @staticmethod
    def failure(
        code_status: int,
        stage: str,
        code: str,
        message: str,
        details: dict[str, Any],
        request_id: str,
    ) -> Response:
        body = {
            "success": False,
            "error": {"step": stage, "code": code, "message": message, "details": details},
            "request_id": request_id,
        }
        return Response(body, status=code_status)
