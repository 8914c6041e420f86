from __future__ import annotations

from orders.notifications import send_order_email
from orders.types import CreateOrderContext


def send_confirmation(ctx: CreateOrderContext) -> CreateOrderContext:
    """Email the customer that the order is placed and paid."""
    order = ctx.placed_order()
    lines = "\n".join(
        f"  {line.quantity} x {ctx.products[line.product_id].name}" for line in ctx.lines
    )
    send_order_email(
        order=order,
        subject=f"Order #{order.pk} confirmed",
        body=f"Thank you for your order #{order.pk}.\n\n{lines}\n\nTotal: {order.total}\n",
        timeout=ctx.remaining(),
    )
    return ctx
