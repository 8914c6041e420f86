from __future__ import annotations

from orders.notifications import send_order_email
from orders.types import CancelOrderContext


def notify_cancellation(ctx: CancelOrderContext) -> CancelOrderContext:
    order = ctx.loaded_order()
    refund = f"{order.total} will be refunded to your card." if ctx.refund else ""
    send_order_email(
        order=order,
        subject=f"Order #{order.pk} cancelled",
        body=f"Your order #{order.pk} is cancelled. {refund}\n",
        timeout=ctx.remaining(),
        dedupe_key=ctx.metadata.get("dedupe_key"),
    )
    return ctx
