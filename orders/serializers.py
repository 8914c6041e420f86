"""Request and response shapes of the orders API."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.validators import MaxLengthValidator, MinLengthValidator
from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import Direction
from rest_framework import serializers
from rest_framework.settings import api_settings

from orders.models import MAX_LINES, MAX_QUANTITY, Order, OrderItem, Product
from orders.quotes import TAX_RATES

#: Fields a client might send that the server computes: named in the error
#: so that nobody believes a sent total or price was used.
SERVER_COMPUTED = frozenset({"total", "unit_price", "line_total", "price", "status", "owner"})

MERGE_HINT = "send one line with the total quantity."

#: The largest id a BigAutoField holds; larger numbers overflow the database driver.
MAX_ID = 2**63 - 1


def find_unknown_fields(serializer: serializers.Serializer, data: Any) -> dict[str, list[str]]:
    """Errors for the keys of ``data`` that ``serializer`` does not declare."""
    if not isinstance(data, Mapping):
        return {}
    errors = {}
    for name in sorted(set(data) - set(serializer.fields)):
        if name in SERVER_COMPUTED:
            errors[name] = ["This value is computed by the server and must not be sent."]
        else:
            errors[name] = ["Unknown field."]
    return errors


class StrictSerializer(serializers.Serializer):
    """Refuses undeclared keys instead of silently dropping them, next to the other errors."""

    def to_internal_value(self, data: Any) -> Any:
        unknown = find_unknown_fields(self, data)
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if unknown and isinstance(exc.detail, dict):
                raise serializers.ValidationError({**exc.detail, **unknown}) from exc
            raise
        if unknown:
            raise serializers.ValidationError(unknown)
        return value


# JSON types are not coerced: a client that sends "2" or 2.0 for a quantity, or a number
# for a token, has a bug that coercion would hide (docs/example-project.md, "Validation").


class JSONIntegerField(serializers.IntegerField):
    """A JSON integer only: no numeric string, no 2.0, no boolean."""

    default_error_messages = {"not_an_integer": "Must be a JSON integer, not {kind}."}

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("not_an_integer", kind=json_kind(data))
        return super().to_internal_value(data)


class JSONStringField(serializers.CharField):
    """A JSON string only: a number is not silently turned into one."""

    default_error_messages = {"not_a_string": "Must be a JSON string, not {kind}."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("not_a_string", kind=json_kind(data))
        return super().to_internal_value(data)


def json_kind(value: Any) -> str:
    """How a JSON value's type reads in an error message."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    kinds = {str: "a string", list: "an array", dict: "an object", type(None): "null"}
    return kinds.get(type(value), type(value).__name__)


class OrderLinesSerializer(serializers.ListSerializer):
    """The lines of an order. Errors about the list as a whole (empty, not a list, too
    long) are a list of messages, the same shape as a missing or null ``items``; errors
    about lines are keyed by line index."""

    def run_validation(self, data: Any = serializers.empty) -> Any:
        try:
            return super().run_validation(data)
        except serializers.ValidationError as exc:
            detail = exc.detail
            if isinstance(detail, dict) and set(detail) == {api_settings.NON_FIELD_ERRORS_KEY}:
                raise serializers.ValidationError(
                    detail[api_settings.NON_FIELD_ERRORS_KEY]
                ) from exc
            raise


class OrderLineInputSerializer(StrictSerializer):
    product = JSONIntegerField(min_value=1, max_value=MAX_ID, help_text="Product id.")
    quantity = JSONIntegerField(min_value=1, max_value=MAX_QUANTITY)


def line_count_limits() -> list[Any]:
    """1 to ``MAX_LINES`` lines, as validators: drf-spectacular reads them into the schema
    (``minItems``, ``maxItems``). They never fire: ``allow_empty`` and ``max_length`` refuse
    such lists first, with DRF's messages about lists."""
    return [MinLengthValidator(1), MaxLengthValidator(MAX_LINES)]


class CreateOrderSerializer(StrictSerializer):
    """The body of ``POST /api/orders/``; prices and totals come from the server."""

    items: serializers.ListSerializer[Any] = OrderLinesSerializer(
        child=OrderLineInputSerializer(),
        allow_empty=False,
        max_length=MAX_LINES,
        validators=line_count_limits(),
    )
    payment_token = JSONStringField(
        max_length=64,
        help_text="Card token from the payment processor (test mode: tok_visa, "
        "tok_declined, tok_unavailable).",
    )

    def validate_items(self, items: list[dict[str, int]]) -> list[dict[str, int]]:
        """One line per product, every product known and on sale (one query)."""
        ids = [item["product"] for item in items]
        orderable = set(
            Product.objects.filter(pk__in=ids, active=True).values_list("pk", flat=True)
        )
        seen: set[int] = set()
        # Keyed by line index, like DRF's own errors for the lines' fields.
        errors: dict[str, dict[str, list[str]]] = {}
        for index, product_id in enumerate(ids):
            if product_id not in orderable:
                errors[str(index)] = {
                    "product": [f"Product {product_id} does not exist or is not on sale."]
                }
            elif product_id in seen:
                errors[str(index)] = {
                    "product": [f"Product {product_id} is listed more than once; {MERGE_HINT}"]
                }
            seen.add(product_id)
        if errors:
            raise serializers.ValidationError(errors)
        return items


class QuoteSerializer(StrictSerializer):
    """The body of ``POST /api/orders/quote/``: what would these items cost, delivered there?"""

    items: serializers.ListSerializer[Any] = serializers.ListSerializer(
        child=OrderLineInputSerializer(),
        allow_empty=False,
        max_length=MAX_LINES,
        validators=line_count_limits(),
    )
    country = serializers.ChoiceField(
        choices=sorted(TAX_RATES), help_text="Destination country (ISO 3166-1 alpha-2)."
    )

    validate_items = CreateOrderSerializer.validate_items


class QuoteResultSerializer(serializers.Serializer):
    """A quote: the goods at catalogue prices, the carrier's price and the VAT on the goods."""

    country = serializers.CharField()
    subtotal = serializers.DecimalField(max_digits=16, decimal_places=2)
    shipping = serializers.DecimalField(max_digits=16, decimal_places=2)
    tax = serializers.DecimalField(max_digits=16, decimal_places=2)
    total = serializers.DecimalField(max_digits=16, decimal_places=2)


class ProductSerializer(serializers.ModelSerializer):
    class Meta:
        model = Product
        fields = ("id", "sku", "name", "price", "stock", "active")
        read_only_fields = fields


class OrderItemSerializer(serializers.ModelSerializer):
    sku = serializers.CharField(source="product.sku", read_only=True)
    name = serializers.CharField(source="product.name", read_only=True)

    class Meta:
        model = OrderItem
        fields = ("product", "sku", "name", "quantity", "unit_price", "line_total")
        read_only_fields = fields


class OrderSerializer(serializers.ModelSerializer):
    items = OrderItemSerializer(many=True, read_only=True)

    class Meta:
        model = Order
        fields = (
            "id",
            "status",
            "total",
            "items",
            "payment_reference",
            "refund_reference",
            "created",
            "cancelled_at",
        )
        read_only_fields = fields


class StrictSerializerSchema(OpenApiSerializerExtension):
    """In the schema, a ``StrictSerializer`` allows no other properties, as it does."""

    target_class = StrictSerializer
    match_subclasses = True

    def map_serializer(self, auto_schema: AutoSchema, direction: Direction) -> dict[str, Any]:
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        return {**schema, "additionalProperties": False}
