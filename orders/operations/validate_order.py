from __future__ import annotations

from orchestration import ValidationFailed
from orders.serializers import CreateOrderSerializer
from orders.types import CreateOrderContext, OrderLine


def validate_order(ctx: CreateOrderContext) -> CreateOrderContext:
    """Check the request body; field errors come back as a 400 from this step."""
    serializer = CreateOrderSerializer(data=ctx.input.data)
    if not serializer.is_valid():
        raise ValidationFailed("The order is invalid.", details=serializer.errors)
    data = serializer.validated_data
    ctx.lines = tuple(
        OrderLine(product_id=item["product"], quantity=item["quantity"]) for item in data["items"]
    )
    ctx.payment_token = data["payment_token"]
    return ctx
