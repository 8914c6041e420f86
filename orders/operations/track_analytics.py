from __future__ import annotations

import logging

from orders.types import CreateOrderContext

analytics = logging.getLogger("orders.analytics")


def track_analytics(ctx: CreateOrderContext) -> CreateOrderContext:
    """Emit an ``order_placed`` event for the analytics pipeline that reads the logs."""
    order = ctx.placed_order()
    analytics.info(
        "order_placed order=%s lines=%d units=%d total=%s",
        order.pk,
        len(ctx.lines),
        sum(line.quantity for line in ctx.lines),
        order.total,
        extra={"request_id": ctx.request_id},
    )
    return ctx
