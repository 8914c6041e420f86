from __future__ import annotations

from orchestration import Conflict
from orders.models import Order
from orders.types import CancelOrderContext


def check_state(ctx: CancelOrderContext) -> CancelOrderContext:
    """Only a paid order can be cancelled (a cancelled one already was)."""
    order = ctx.loaded_order()
    if order.status != Order.Status.PAID:
        raise Conflict(
            f"Order #{order.pk} is {order.get_status_display().lower()}; "
            "only paid orders can be cancelled.",
            code="order_not_cancellable",
            details={"status": order.status},
        )
    return ctx
