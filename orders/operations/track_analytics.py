from __future__ import annotations

import logging

from django.db.models import Count, Sum

from orders.types import CreateOrderContext

analytics = logging.getLogger("orders.analytics")


def track_analytics(ctx: CreateOrderContext) -> CreateOrderContext:
    """Emit an ``order_placed`` event for the analytics pipeline that reads the logs."""
    order = ctx.placed_order()
    totals = order.items.aggregate(lines=Count("id"), units=Sum("quantity"))
    analytics.info(
        "order_placed order=%s lines=%d units=%d total=%s",
        order.pk,
        totals["lines"],
        totals["units"] or 0,
        order.total,
        extra={"request_id": ctx.request_id},
    )
    return ctx
