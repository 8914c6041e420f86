"""The order pipelines: what runs, in which order, and what a failure means."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from django.conf import settings

from orchestration import (
    BaseOrchestrator,
    OrchestratorResult,
    Parallel,
    Retry,
    ServiceUnavailable,
    Step,
)
from orders.models import Order
from orders.notifications import owner_has_email
from orders.operations.charge_payment import charge_payment, refund_charge, refund_lost_charge
from orders.operations.check_permissions import check_permissions
from orders.operations.check_state import check_state
from orders.operations.claim_idempotency_key import claim_idempotency_key
from orders.operations.create_order import create_order
from orders.operations.load_order import load_order
from orders.operations.mark_cancelled import mark_cancelled
from orders.operations.mark_paid import mark_paid
from orders.operations.notify_cancellation import notify_cancellation
from orders.operations.quote_shipping import aquote_shipping, quote_shipping
from orders.operations.quote_tax import aquote_tax, quote_tax
from orders.operations.refund_order import refund_order, was_charged
from orders.operations.reserve_stock import reserve_stock
from orders.operations.restock import restock
from orders.operations.send_confirmation import send_confirmation
from orders.operations.track_analytics import track_analytics
from orders.operations.validate_order import validate_order
from orders.operations.validate_quote import validate_quote
from orders.types import (
    CancelOrderContext,
    CancelOrderInput,
    CreateOrderContext,
    CreateOrderInput,
    QuoteContext,
    QuoteInput,
)

#: The payment processor is retried on transient errors only: a declined card
#: (PaymentRequired) fails at once.
GATEWAY_RETRY = Retry(attempts=3, backoff=0.1, max_backoff=1.0, on=(ServiceUnavailable,))

#: Seconds an email step may spend on the mail server before it counts as failed.
EMAIL_BUDGET = 10.0

#: Email steps run in a task worker: a mail server that is briefly down is tried again
#: within the budget (and the worker queues the step again later if it stays down).
EMAIL_RETRY = Retry(attempts=3, backoff=0.5, max_backoff=2.0, on=(ServiceUnavailable,))


def payment_budget() -> float:
    """Seconds the charge may take, retries included (``PAYMENT_TIMEOUT``): well under
    the worker timeout, so that a slow processor ends in an answer, not a killed worker."""
    return float(settings.PAYMENT_TIMEOUT)


def has_idempotency_key(ctx: CreateOrderContext) -> bool:
    return ctx.input.idempotency_key is not None


class CreateOrder(BaseOrchestrator[CreateOrderContext, Order, CreateOrderInput]):
    """Place and pay an order for the acting user."""

    pipeline: ClassVar[Sequence[Step[CreateOrderContext]]] = (
        Step("validate_order", validate_order),
        Step("check_permissions", check_permissions),
        # Before any row lock: a duplicate request fails here without waiting for stock.
        Step("claim_idempotency_key", claim_idempotency_key, when=has_idempotency_key),
        Step("reserve_stock", reserve_stock),
        Step("create_order", create_order),
        # Journaled: the capture is refunded even if this process dies before the commit.
        Step(
            "charge_payment",
            charge_payment,
            retry=GATEWAY_RETRY,
            timeout=payment_budget(),
            compensate=refund_charge,
            recover=refund_lost_charge,
        ),
        Step("mark_paid", mark_paid),
        Step(
            "send_confirmation",
            send_confirmation,
            critical=False,
            after_commit=True,
            when=owner_has_email,
            timeout=EMAIL_BUDGET,
            retry=EMAIL_RETRY,
            uses=("order",),
        ),
        Step(
            "track_analytics", track_analytics, critical=False, after_commit=True, uses=("order",)
        ),
    )

    def initialize_context(self, input: CreateOrderInput, **kwargs: Any) -> CreateOrderContext:
        return CreateOrderContext(input=input, **kwargs)

    def build_result(self, ctx: CreateOrderContext) -> Order:
        return ctx.placed_order()

    def run_subject(
        self, ctx: CreateOrderContext, result: OrchestratorResult[Order]
    ) -> Order | None:
        # A failed run's order was rolled back: there is no row to link to.
        return ctx.order if result.success else None


class CancelOrder(BaseOrchestrator[CancelOrderContext, Order, CancelOrderInput]):
    """Cancel one of the acting user's paid orders: stock back, money back."""

    pipeline: ClassVar[Sequence[Step[CancelOrderContext]]] = (
        Step("load_order", load_order),
        Step("check_state", check_state),
        Step("restock", restock),
        Step("mark_cancelled", mark_cancelled),
        # Last of the critical steps: a refund cannot be rolled back, so every
        # local write that could still fail has run before it.
        Step(
            "refund_order",
            refund_order,
            when=was_charged,
            retry=GATEWAY_RETRY,
            timeout=payment_budget(),
        ),
        Step(
            "notify_cancellation",
            notify_cancellation,
            critical=False,
            after_commit=True,
            when=owner_has_email,
            timeout=EMAIL_BUDGET,
            retry=EMAIL_RETRY,
            uses=("order", "refund"),
        ),
    )

    def initialize_context(self, input: CancelOrderInput, **kwargs: Any) -> CancelOrderContext:
        return CancelOrderContext(input=input, **kwargs)

    def build_result(self, ctx: CancelOrderContext) -> Order:
        return ctx.loaded_order()

    def run_subject(
        self, ctx: CancelOrderContext, result: OrchestratorResult[Order]
    ) -> Order | None:
        return ctx.order  # loaded, not created: it exists whatever the outcome


#: Seconds each quote service may take, retries included, before the quote fails (503).
QUOTE_BUDGET = 2.0
QUOTE_RETRY = Retry(attempts=2, backoff=0.05, max_backoff=0.2, on=(ServiceUnavailable,))


def quote_pipeline(
    shipping: Callable[[QuoteContext], Any], tax: Callable[[QuoteContext], Any]
) -> tuple[Step[QuoteContext], ...]:
    """Validate, then ask the carrier and the tax service at the same time."""
    return (
        Step("validate_quote", validate_quote),
        Parallel(
            "quotes",
            Step(
                "quote_shipping",
                shipping,
                outputs=("shipping",),
                retry=QUOTE_RETRY,
                timeout=QUOTE_BUDGET,
            ),
            Step("quote_tax", tax, outputs=("tax",), retry=QUOTE_RETRY, timeout=QUOTE_BUDGET),
        ),
    )


class Quote(BaseOrchestrator[QuoteContext, dict[str, Any], QuoteInput]):
    """Price a cart delivered to a country; shipping and tax are asked at the same time.

    Nothing is written, so the run needs no transaction.
    """

    atomic = False
    pipeline: ClassVar[Sequence[Step[QuoteContext]]] = quote_pipeline(quote_shipping, quote_tax)

    def initialize_context(self, input: QuoteInput, **kwargs: Any) -> QuoteContext:
        return QuoteContext(input=input, **kwargs)

    def build_result(self, ctx: QuoteContext) -> dict[str, Any]:
        return ctx.quote()


class AsyncQuote(Quote):
    """``Quote`` for the async view (``aexecute``): the services are awaited on the event loop."""

    metric_name = "quote_async"
    pipeline: ClassVar[Sequence[Step[QuoteContext]]] = quote_pipeline(aquote_shipping, aquote_tax)
