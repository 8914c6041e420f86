from __future__ import annotations

from orchestration import ValidationFailed
from orders.models import Product
from orders.serializers import QuoteSerializer
from orders.types import OrderLine, QuoteContext


def validate_quote(ctx: QuoteContext) -> QuoteContext:
    """Check the request body and price the goods from the catalogue (one query)."""
    serializer = QuoteSerializer(data=ctx.input.data)
    if not serializer.is_valid():
        raise ValidationFailed("The quote request is invalid.", details=serializer.errors)
    data = serializer.validated_data
    ctx.lines = tuple(
        OrderLine(product_id=item["product"], quantity=item["quantity"]) for item in data["items"]
    )
    prices = dict(
        Product.objects.filter(pk__in=[line.product_id for line in ctx.lines]).values_list(
            "pk", "price"
        )
    )
    ctx.country = data["country"]
    ctx.units = sum(line.quantity for line in ctx.lines)
    ctx.subtotal = sum(
        (prices[line.product_id] * line.quantity for line in ctx.lines), start=ctx.subtotal
    )
    return ctx
