"""The operator's view: products to manage, orders to inspect (orders come from the API)."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.utils.html import format_html
from django.utils.http import urlencode

from orchestration.models import RunRecord
from orders.models import IdempotencyRecord, Order, OrderItem, Product


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ("sku", "name", "price", "stock", "active", "updated")
    list_editable = ("price", "stock", "active")
    list_filter = ("active",)
    search_fields = ("sku", "name")
    ordering = ("name",)
    readonly_fields = ("created", "updated")


class OrderItemInline(admin.TabularInline):
    model = OrderItem
    fields = ("product", "quantity", "unit_price", "line_total")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Order | None = None) -> bool:
        return False


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    """Amounts, payment and status are the pipelines' to change: read-only here,
    so that nobody marks an order cancelled without its stock and refund."""

    list_display = ("id", "owner", "status", "total", "item_count", "created")
    list_filter = ("status", ("created", admin.DateFieldListFilter))
    search_fields = ("=id", "owner__username", "owner__email", "payment_reference")
    date_hierarchy = "created"
    list_select_related = ("owner",)
    inlines = (OrderItemInline,)
    readonly_fields = (
        "owner",
        "status",
        "total",
        "payment_reference",
        "refund_reference",
        "created",
        "updated",
        "cancelled_at",
        "runs",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Order]:
        return super().get_queryset(request).annotate(item_count=Count("items"))

    @admin.display(description="recorded runs")
    def runs(self, order: Order) -> str:
        """Link to the run explorer: the recorded runs about this order (failed
        cancellations, sampled placements; a failed placement left no order)."""
        subject = {"subject_type": Order._meta.label_lower, "subject_id": str(order.pk)}
        count = RunRecord.objects.filter(**subject).count()
        url = f"{reverse('admin:orchestration_runrecord_changelist')}?{urlencode(subject)}"
        return format_html('<a href="{}">{} recorded run{}</a>', url, count, pluralize(count))

    @admin.display(description="items", ordering="item_count")
    def item_count(self, order: Order) -> int:
        return order.item_count  # type: ignore[attr-defined]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(admin.ModelAdmin):
    list_display = ("key", "user", "order", "response_status", "created")
    list_filter = ("response_status", ("created", admin.DateFieldListFilter))
    search_fields = ("key", "user__username")
    list_select_related = ("user", "order")
    readonly_fields = (
        "user",
        "key",
        "fingerprint",
        "order",
        "response_status",
        "response_body",
        "created",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
