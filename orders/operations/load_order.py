from __future__ import annotations

from orchestration import NotFound
from orders.models import ORDER_NOT_FOUND, Order
from orders.types import CancelOrderContext


def load_order(ctx: CancelOrderContext) -> CancelOrderContext:
    """Lock the caller's order; another user's order is reported as missing, not forbidden."""
    order = (
        Order.objects.select_for_update()
        .filter(pk=ctx.input.order_id, owner=ctx.user)
        .select_related("owner")
        .first()
    )
    if order is None:
        raise NotFound(ORDER_NOT_FOUND)
    ctx.order = order
    return ctx
