"""The operator's view: products to manage, orders to inspect (orders come from the API).

Orders change only through their pipelines: the admin shows them read-only, cancels
them with the CancelOrder pipeline (stock back, money back, customer told) and deletes
only an order that was never charged.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.utils.html import format_html
from django.utils.http import urlencode

from orchestration.models import RunRecord
from orders.models import CANCEL_ANY_ORDER, IdempotencyRecord, Order, OrderItem, Product
from orders.orchestrators import CancelOrder
from orders.types import CancelOrderInput


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

    def get_queryset(self, request: HttpRequest) -> QuerySet[OrderItem]:
        # Each row is titled by its product: fetch them with the items.
        return super().get_queryset(request).select_related("product")

    def has_add_permission(self, request: HttpRequest, obj: Order | None = None) -> bool:
        return False


def was_charged(order: Order) -> bool:
    """Money moved for this order (captured, and possibly refunded since)."""
    return bool(order.payment_reference)


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
    actions = ("cancel_and_refund",)
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

    def has_change_permission(self, request: HttpRequest, obj: Order | None = None) -> bool:
        # Every field is read-only: a view page (no Save button) and no admin-side writes.
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Order | None = None) -> bool:
        if obj is not None and was_charged(obj):
            return False  # deleting would skip the refund and the restock: cancel it instead
        return super().has_delete_permission(request, obj)

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(CANCEL_ANY_ORDER)

    def get_actions(self, request: HttpRequest, action_location: Any = None) -> dict[str, Any]:
        # Django 6.1 says where the actions are shown (its ActionLocation); 5.2 never does.
        where = {} if action_location is None else {"action_location": action_location}
        actions = super().get_actions(request, **where)
        if "delete_selected" in actions:
            actions["delete_selected"] = (
                type(self).delete_uncharged,
                "delete_selected",
                "Delete selected orders (only those never charged)",
            )
        return actions

    def delete_uncharged(self, request: HttpRequest, queryset: QuerySet[Order]) -> Any:
        """Django's bulk delete, refused when any selected order was charged."""
        charged = [f"#{order.pk}" for order in queryset.order_by("pk") if was_charged(order)]
        if charged:
            self.message_user(
                request,
                f"Nothing deleted: order {', '.join(charged)} was charged. "
                "Use “Cancel and refund” instead.",
                messages.ERROR,
            )
            return None
        return delete_selected(self, request, queryset)

    @admin.action(
        description="Cancel and refund (stock back, money back, customer told)",
        permissions=["cancel"],
    )
    def cancel_and_refund(
        self, request: HttpRequest, queryset: QuerySet[Order]
    ) -> HttpResponse | None:
        """Run the CancelOrder pipeline for each selected order, as the API would."""
        cancelled: list[str] = []
        for order in queryset.order_by("pk"):
            result = CancelOrder().execute(
                CancelOrderInput(order_id=order.pk, any_owner=True), user=request.user
            )
            if result.success:
                cancelled.append(f"#{order.pk}")
            elif result.error is not None:
                self.message_user(
                    request,
                    f"Order #{order.pk} not cancelled ({result.error.code}): "
                    f"{result.error.message}",
                    messages.ERROR,
                )
        if cancelled:
            self.message_user(
                request, f"Cancelled and refunded: order {', '.join(cancelled)}.", messages.SUCCESS
            )
        return None


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

    def has_change_permission(
        self, request: HttpRequest, obj: IdempotencyRecord | None = None
    ) -> bool:
        return False  # a record is written by the order requests only: a view page
