from __future__ import annotations

from django.utils import timezone

from orders.models import Order
from orders.types import CancelOrderContext


def mark_cancelled(ctx: CancelOrderContext) -> CancelOrderContext:
    order = ctx.loaded_order()
    order.status = Order.Status.CANCELLED
    order.cancelled_at = timezone.now()
    order.save(update_fields=["status", "cancelled_at", "updated"])
    return ctx
