from __future__ import annotations

from typing import Any

import pytest
from django.db import IntegrityError, transaction
from django.db.models import F

from orders.models import OrderItem, Product
from orders.tests.support import place_paid_order

pytestmark = pytest.mark.django_db


def test_the_database_refuses_negative_stock(keyboard: Product) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        Product.objects.filter(pk=keyboard.pk).update(stock=F("stock") - 6)

    keyboard.refresh_from_db()
    assert keyboard.stock == 5


def test_sku_is_unique(keyboard: Product) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        Product.objects.create(sku=keyboard.sku, name="Copy", price=1, stock=1)


def test_an_order_lists_a_product_once(user: Any, keyboard: Product) -> None:
    order = place_paid_order(user, (keyboard, 1))

    with pytest.raises(IntegrityError), transaction.atomic():
        OrderItem.objects.create(
            order=order, product=keyboard, quantity=1, unit_price=1, line_total=1
        )


def test_orders_read_well_in_the_admin_and_logs(user: Any, keyboard: Product) -> None:
    order = place_paid_order(user, (keyboard, 1))

    assert str(order) == f"Order #{order.pk} (Paid)"
    assert str(keyboard) == f"{keyboard.sku} Keyboard"
