from __future__ import annotations

from orders.payments import get_gateway
from orders.types import CancelOrderContext


def refund_order(ctx: CancelOrderContext) -> CancelOrderContext:
    """Refund the order's charge; the gateway refunds a charge once, so a retried cancel is safe."""
    order = ctx.loaded_order()
    ctx.refund = get_gateway().refund(
        charge_id=order.payment_reference, amount=order.total, timeout=ctx.remaining()
    )
    order.refund_reference = ctx.refund.id
    order.save(update_fields=["refund_reference", "updated"])
    return ctx


def was_charged(ctx: CancelOrderContext) -> bool:
    return bool(ctx.loaded_order().payment_reference)
