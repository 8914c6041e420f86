from __future__ import annotations

from django.db import IntegrityError
from django.db.models import Case, F, When

from orchestration import Conflict
from orders.models import Product
from orders.types import CreateOrderContext


def reserve_stock(ctx: CreateOrderContext) -> CreateOrderContext:
    """Take the ordered units out of stock, or refuse the whole order with a 409.

    The product rows stay locked until the order commits or rolls back, so two
    orders cannot both take the last unit. Rows are locked in id order: two
    orders for the same products then wait for each other instead of deadlocking.
    """
    wanted = {line.product_id: line.quantity for line in ctx.lines}
    products = list(
        Product.objects.select_for_update().filter(pk__in=wanted, active=True).order_by("pk")
    )
    locked = {product.pk: product for product in products}
    withdrawn = sorted(set(wanted) - set(locked))
    if withdrawn:
        raise Conflict(
            "Some products were withdrawn from sale while the order was placed.",
            code="product_unavailable",
            details={"products": withdrawn},
        )
    short = [
        {"product": product.pk, "requested": wanted[product.pk], "available": product.stock}
        for product in products
        if product.stock < wanted[product.pk]
    ]
    if short:
        raise Conflict(
            "Not enough stock for this order.", code="out_of_stock", details={"items": short}
        )
    try:
        Product.objects.filter(pk__in=locked).update(
            stock=Case(
                *(When(pk=pk, then=F("stock") - quantity) for pk, quantity in wanted.items())
            )
        )
    except IntegrityError:
        # Only reachable without row locks (SQLite): the stock check constraint
        # refused a concurrent oversell.
        raise Conflict("Not enough stock for this order.", code="out_of_stock") from None
    for product in products:
        product.stock -= wanted[product.pk]
    ctx.products = locked
    return ctx
