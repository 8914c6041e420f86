"""Products, orders, order items and the idempotency records of order requests."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q

#: Bounds that keep every computed amount inside its column: a line is at most
#: MAX_QUANTITY x the largest price, an order at most MAX_LINES such lines.
MAX_QUANTITY = 1000
MAX_LINES = 100

#: The one answer (code not_found) for an order that does not exist or is another user's,
#: whether it is read or cancelled.
ORDER_NOT_FOUND = "Order not found."

#: The permission an operator needs to cancel (and refund) a customer's order.
CANCEL_ANY_ORDER = "orders.change_order"


class Product(models.Model):
    sku = models.CharField("SKU", max_length=32, unique=True)
    name = models.CharField(max_length=200)
    price = models.DecimalField(max_digits=10, decimal_places=2)
    stock = models.PositiveIntegerField(default=0, help_text="Units available to order.")
    active = models.BooleanField(default=True, help_text="Inactive products cannot be ordered.")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("name", "id")
        constraints = (
            # Row locks prevent overselling; this makes the database refuse it too.
            models.CheckConstraint(condition=Q(stock__gte=0), name="product_stock_not_negative"),
            models.CheckConstraint(condition=Q(price__gte=0), name="product_price_not_negative"),
        )

    def __str__(self) -> str:
        return f"{self.sku} {self.name}"


class Order(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending payment"
        PAID = "paid", "Paid"
        CANCELLED = "cancelled", "Cancelled"

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="orders"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    total = models.DecimalField(max_digits=16, decimal_places=2, default=Decimal("0.00"))
    payment_reference = models.CharField(max_length=64, blank=True)
    refund_reference = models.CharField(max_length=64, blank=True)
    created = models.DateTimeField(auto_now_add=True, db_index=True)
    updated = models.DateTimeField(auto_now=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created", "-id")
        indexes = (models.Index(fields=("owner", "-created"), name="order_owner_created_idx"),)
        constraints = (
            models.CheckConstraint(condition=Q(total__gte=0), name="order_total_not_negative"),
        )

    def __str__(self) -> str:
        return f"Order #{self.pk} ({self.get_status_display()})"


class OrderItem(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="items")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="order_items")
    quantity = models.PositiveIntegerField()
    unit_price = models.DecimalField(
        max_digits=10, decimal_places=2, help_text="The product's price when the order was placed."
    )
    line_total = models.DecimalField(max_digits=14, decimal_places=2)

    class Meta:
        ordering = ("id",)
        constraints = (
            models.UniqueConstraint(fields=("order", "product"), name="order_item_product_once"),
            models.CheckConstraint(
                condition=Q(quantity__gt=0), name="order_item_quantity_positive"
            ),
        )

    def __str__(self) -> str:
        # The product's own title (SKU and name), as the admin shows the line.
        return f"{self.quantity} x {self.product}"


class IdempotencyRecord(models.Model):
    """One ``Idempotency-Key`` of one user: the request it stood for and its response.

    The record is written in the same transaction as the order, so a key is
    consumed only by a request that succeeded; the response is stored once the
    request has finished and is replayed for every retry with the same key.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="idempotency_records"
    )
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(
        max_length=64, help_text="SHA-256 of the canonical request body."
    )
    #: Linked in the order's transaction: a retry can be answered from the order
    #: even if the process died before the response below was stored.
    order = models.OneToOneField(
        "Order",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="idempotency_record",
    )
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ("-created", "-id")
        constraints = (
            models.UniqueConstraint(fields=("user", "key"), name="idempotency_key_once_per_user"),
        )

    def __str__(self) -> str:
        return f"{self.key} ({self.user_id})"
