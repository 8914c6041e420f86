from __future__ import annotations

from decimal import Decimal

from orders.models import Order, OrderItem
from orders.types import CreateOrderContext


def create_order(ctx: CreateOrderContext) -> CreateOrderContext:
    """Write the order and its items for ``ctx.user``; prices come from the locked products."""
    items = [
        OrderItem(
            product=ctx.products[line.product_id],
            quantity=line.quantity,
            unit_price=ctx.products[line.product_id].price,
            line_total=ctx.products[line.product_id].price * line.quantity,
        )
        for line in ctx.lines
    ]
    order = Order.objects.create(
        owner=ctx.user,
        status=Order.Status.PENDING,
        total=sum((item.line_total for item in items), start=Decimal("0.00")),
    )
    for item in items:
        item.order = order
    OrderItem.objects.bulk_create(items)
    if ctx.idempotency_record is not None:
        ctx.idempotency_record.order = order
        ctx.idempotency_record.save(update_fields=["order"])
    ctx.order = order
    return ctx
