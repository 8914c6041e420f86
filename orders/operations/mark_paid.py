from __future__ import annotations

from orders.models import Order
from orders.types import CreateOrderContext


def mark_paid(ctx: CreateOrderContext) -> CreateOrderContext:
    """Record the captured charge on the order."""
    order = ctx.placed_order()
    if ctx.charge is None:
        raise RuntimeError("mark_paid needs the charge of charge_payment.")
    order.status = Order.Status.PAID
    order.payment_reference = ctx.charge.id
    order.save(update_fields=["status", "payment_reference", "updated"])
    return ctx
