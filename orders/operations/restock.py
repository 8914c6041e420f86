from __future__ import annotations

from django.db.models import Case, F, When

from orders.models import Product
from orders.types import CancelOrderContext


def restock(ctx: CancelOrderContext) -> CancelOrderContext:
    """Put the order's units back, locking products in the same order as ``reserve_stock``."""
    returned = dict(ctx.loaded_order().items.values_list("product_id", "quantity"))
    locked = list(
        Product.objects.select_for_update()
        .filter(pk__in=returned)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    Product.objects.filter(pk__in=locked).update(
        stock=Case(*(When(pk=pk, then=F("stock") + returned[pk]) for pk in locked))
    )
    return ctx
