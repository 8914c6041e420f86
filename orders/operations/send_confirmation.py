from __future__ import annotations

from orders.notifications import send_order_email
from orders.types import CreateOrderContext


def send_confirmation(ctx: CreateOrderContext) -> CreateOrderContext:
    """Email the customer that the order is placed and paid (from the committed rows)."""
    order = ctx.placed_order()
    lines = "\n".join(
        f"  {item.quantity} x {item.product.name}"
        for item in order.items.select_related("product").order_by("id")
    )
    send_order_email(
        order=order,
        subject=f"Order #{order.pk} confirmed",
        body=f"Thank you for your order #{order.pk}.\n\n{lines}\n\nTotal: {order.total}\n",
        timeout=ctx.remaining(),
        dedupe_key=ctx.metadata.get("dedupe_key"),
    )
    return ctx
