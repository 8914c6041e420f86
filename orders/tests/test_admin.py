from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.core import mail
from django.test import Client

from orders.models import IdempotencyRecord, Order, Product
from orders.payments import FakeGateway
from orders.tests.support import place_paid_order, stock_levels

ORDERS = "/admin/orders/order/"

pytestmark = pytest.mark.django_db


def test_order_changelist_filters_and_searches(
    admin_client: Client, user: Any, other_user: Any, keyboard: Product, cable: Product
) -> None:
    mine = place_paid_order(user, (keyboard, 2), (cable, 1))
    place_paid_order(other_user, (cable, 1))

    listing = admin_client.get("/admin/orders/order/")
    searched = admin_client.get("/admin/orders/order/", {"q": "alice"})
    cancelled = admin_client.get("/admin/orders/order/", {"status__exact": "cancelled"})

    assert listing.status_code == 200
    assert listing.context["cl"].result_count == 2
    assert [order.pk for order in searched.context["cl"].result_list] == [mine.pk]
    assert searched.context["cl"].result_list[0].item_count == 2
    assert cancelled.context["cl"].result_count == 0


def test_order_page_shows_items_and_keeps_amounts_read_only(
    admin_client: Client, user: Any, keyboard: Product
) -> None:
    order = place_paid_order(user, (keyboard, 2))

    response = admin_client.get(f"/admin/orders/order/{order.pk}/change/")

    assert response.status_code == 200
    assert "total" not in response.context["adminform"].form.fields
    assert "status" not in response.context["adminform"].form.fields
    [inline] = response.context["inline_admin_formsets"]
    assert [item.quantity for item in inline.formset.queryset] == [2]
    assert admin_client.get("/admin/orders/order/add/").status_code == 403


def test_product_changelist_searches_by_sku(admin_client: Client, keyboard: Product) -> None:
    response = admin_client.get("/admin/orders/product/", {"q": keyboard.sku})

    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [keyboard]


def test_order_item_rows_are_titled_by_their_product(
    admin_client: Client, user: Any, keyboard: Product
) -> None:
    order = place_paid_order(user, (keyboard, 2))

    page = admin_client.get(f"{ORDERS}{order.pk}/change/").content.decode()

    assert f"2 x {keyboard.sku} Keyboard" in page
    assert "in order" not in page


def test_read_only_pages_have_no_save_button(admin_client: Client, user: Any, keyboard: Product):
    order = place_paid_order(user, (keyboard, 1))
    record = IdempotencyRecord.objects.create(user=user, key="k-1", fingerprint="f", order=order)

    for page in (
        f"{ORDERS}{order.pk}/change/",
        f"/admin/orders/idempotencyrecord/{record.pk}/change/",
    ):
        response = admin_client.get(page)
        assert response.status_code == 200
        assert 'name="_save"' not in response.content.decode()
        assert 'name="_continue"' not in response.content.decode()
    # Nor does a hand-made POST change anything.
    assert admin_client.post(f"{ORDERS}{order.pk}/change/", {}).status_code == 403


def test_a_charged_order_cannot_be_deleted(
    admin_client: Client, user: Any, keyboard: Product
) -> None:
    order = place_paid_order(user, (keyboard, 2))

    page = admin_client.get(f"{ORDERS}{order.pk}/change/").content.decode()
    delete_page = admin_client.get(f"{ORDERS}{order.pk}/delete/")
    bulk = admin_client.post(
        ORDERS, {"action": "delete_selected", "_selected_action": [order.pk], "post": "yes"},
        follow=True,
    )  # fmt: skip

    assert f"{ORDERS}{order.pk}/delete/" not in page
    assert delete_page.status_code == 403
    assert "Nothing deleted" in bulk.content.decode()
    assert Order.objects.filter(pk=order.pk).exists()


def test_an_order_never_charged_can_be_deleted(admin_client: Client, user: Any) -> None:
    pending = Order.objects.create(owner=user)

    admin_client.post(
        ORDERS, {"action": "delete_selected", "_selected_action": [pending.pk], "post": "yes"}
    )

    assert not Order.objects.filter(pk=pending.pk).exists()


def test_cancel_and_refund_runs_the_cancel_pipeline(
    admin_client: Client,
    user: Any,
    other_user: Any,
    keyboard: Product,
    gateway: FakeGateway,
    django_capture_on_commit_callbacks: Any,
) -> None:
    first = place_paid_order(user, (keyboard, 2))
    second = place_paid_order(other_user, (keyboard, 1))
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):  # the customers' emails
        response = admin_client.post(
            ORDERS,
            {"action": "cancel_and_refund", "_selected_action": [first.pk, second.pk]},
            follow=True,
        )

    assert f"Cancelled and refunded: order #{first.pk}, #{second.pk}." in response.content.decode()
    for order in (first, second):
        order.refresh_from_db()
        assert order.status == Order.Status.CANCELLED
        assert gateway.refunds[order.payment_reference].id == order.refund_reference
    assert stock_levels() == {keyboard.pk: 5}
    assert sorted(message.to[0] for message in mail.outbox) == [
        "alice@example.com",
        "bob@example.com",
    ]


def test_cancel_and_refund_reports_what_it_could_not_cancel(
    admin_client: Client, user: Any, keyboard: Product, gateway: FakeGateway
) -> None:
    order = place_paid_order(user, (keyboard, 1))
    admin_client.post(ORDERS, {"action": "cancel_and_refund", "_selected_action": [order.pk]})

    again = admin_client.post(
        ORDERS, {"action": "cancel_and_refund", "_selected_action": [order.pk]}, follow=True
    )

    assert f"Order #{order.pk} not cancelled (order_not_cancellable)" in again.content.decode()
    assert len(gateway.refunds) == 1


def test_cancel_and_refund_needs_the_permission_to_change_orders(
    client: Client, django_user_model: Any, user: Any, keyboard: Product
) -> None:
    order = place_paid_order(user, (keyboard, 1))
    clerk = django_user_model.objects.create_user("clerk", "clerk@example.com", "x", is_staff=True)
    clerk.user_permissions.add(Permission.objects.get(codename="view_order"))
    client.force_login(clerk)

    page = client.get(ORDERS).content.decode()
    client.post(ORDERS, {"action": "cancel_and_refund", "_selected_action": [order.pk]})

    assert "cancel_and_refund" not in page
    order.refresh_from_db()
    assert order.status == Order.Status.PAID
