from __future__ import annotations

from orchestration import NotFound
from orders.models import Order
from orders.types import CancelOrderContext


def load_order(ctx: CancelOrderContext) -> CancelOrderContext:
    """Lock the caller's order; another user's order is reported as missing, not forbidden.

    Only the order's row is locked (``of=("self",)``), not its owner's, which a
    join would lock too: placing an order checks its owner's row, and a cancel
    holding that row while it waits for the products deadlocked with it. The
    order pipelines lock in one order: the order, then products by id
    (``restock``, ``reserve_stock``); users are never locked.
    """
    order = (
        Order.objects.select_for_update(of=("self",))
        .filter(pk=ctx.input.order_id, owner=ctx.user)
        .select_related("owner")
        .first()
    )
    if order is None:
        raise NotFound("Order not found.", code="order_not_found")
    ctx.order = order
    return ctx
