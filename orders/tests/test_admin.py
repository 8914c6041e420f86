from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from orders.models import Product
from orders.tests.support import place_paid_order

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
