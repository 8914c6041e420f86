"""create_order: the order and its items, totals computed on the server."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from orders.models import Order, OrderItem, Product
from orders.tests.support import placed_context

pytestmark = pytest.mark.django_db


def test_create_order_belongs_to_the_acting_user(
    user: Any, other_user: Any, keyboard: Product, cable: Product
) -> None:
    ctx = placed_context(user, (keyboard, 2), (cable, 3))

    order = Order.objects.get()
    assert ctx.order == order
    assert order.owner == user
    assert order.status == Order.Status.PENDING
    assert not Order.objects.filter(owner=other_user).exists()


def test_create_order_computes_totals_from_product_prices(
    user: Any, keyboard: Product, cable: Product
) -> None:
    placed_context(user, (keyboard, 2), (cable, 3))

    order = Order.objects.get()
    items = {item.product_id: item for item in OrderItem.objects.filter(order=order)}
    assert items[keyboard.pk].unit_price == Decimal("89.00")
    assert items[keyboard.pk].line_total == Decimal("178.00")
    assert items[cable.pk].line_total == Decimal("29.97")
    assert order.total == Decimal("207.97")
