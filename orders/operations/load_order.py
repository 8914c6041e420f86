from __future__ import annotations

from orchestration import NotFound, PermissionDenied
from orders.models import CANCEL_ANY_ORDER, ORDER_NOT_FOUND, Order
from orders.types import CancelOrderContext


def load_order(ctx: CancelOrderContext) -> CancelOrderContext:
    """Lock the caller's order; another user's order is reported as missing, not forbidden.

    Only the order's row is locked (``of=("self",)``), not its owner's, which a
    join would lock too: placing an order checks its owner's row, and a cancel
    holding that row while it waits for the products deadlocked with it. The
    order pipelines lock in one order: the order, then products by id
    (``restock``, ``reserve_stock``); users are never locked.

    An operator's cancellation (``any_owner``) loads any customer's order, and needs the
    permission to change orders.
    """
    orders = Order.objects.select_for_update(of=("self",)).filter(pk=ctx.input.order_id)
    if not ctx.input.any_owner:
        orders = orders.filter(owner=ctx.user)
    elif ctx.user is None or not ctx.user.has_perm(CANCEL_ANY_ORDER):
        raise PermissionDenied("Only an operator may cancel another customer's order.")
    order = orders.select_related("owner").first()
    if order is None:
        raise NotFound(ORDER_NOT_FOUND)
    ctx.order = order
    return ctx
