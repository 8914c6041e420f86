from __future__ import annotations

from orchestration.journal import Effect
from orders.payments import get_gateway
from orders.types import CreateOrderContext

#: Seconds a refund may take when it runs outside any step budget (compensation, recovery).
REFUND_TIMEOUT = 10.0


def charge_payment(ctx: CreateOrderContext) -> CreateOrderContext:
    """Capture the order's total. Writes nothing locally: ``mark_paid`` does.

    Keeping the database write in a later step means that any failure after
    the capture, that write included, triggers ``refund_charge``. The gateway's
    idempotency key is the step's journal key: every attempt, and every retry
    of the same client request, asks for the same capture.
    """
    order = ctx.placed_order()
    ctx.charge = get_gateway().charge(
        amount=order.total,
        token=ctx.payment_token,
        idempotency_key=ctx.effect_key(),
        timeout=ctx.remaining(),
    )
    return ctx


def refund_charge(ctx: CreateOrderContext) -> None:
    """Compensation: give the money back when the order could not be completed."""
    if ctx.charge is not None:
        get_gateway().refund(
            charge_id=ctx.charge.id, amount=ctx.charge.amount, timeout=REFUND_TIMEOUT
        )


def refund_lost_charge(effect: Effect) -> None:
    """Recovery: refund whatever the gateway captured under the effect's key, if anything."""
    gateway = get_gateway()
    charge = gateway.find_charge(idempotency_key=effect.key, timeout=REFUND_TIMEOUT)
    if charge is not None:
        gateway.refund(charge_id=charge.id, amount=charge.amount, timeout=REFUND_TIMEOUT)
