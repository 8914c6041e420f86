from __future__ import annotations

from orders.payments import get_gateway
from orders.types import CreateOrderContext


def charge_payment(ctx: CreateOrderContext) -> CreateOrderContext:
    """Capture the order's total. Writes nothing locally: ``mark_paid`` does.

    Keeping the database write in a later step means that any failure after
    the capture, that write included, triggers ``refund_charge``.
    """
    order = ctx.placed_order()
    ctx.charge = get_gateway().charge(
        amount=order.total,
        token=ctx.payment_token,
        idempotency_key=ctx.charge_key,
        timeout=ctx.remaining(),
    )
    return ctx


def refund_charge(ctx: CreateOrderContext) -> None:
    """Compensation: give the money back when the order could not be completed."""
    if ctx.charge is not None:
        get_gateway().refund(charge_id=ctx.charge.id, amount=ctx.charge.amount)
