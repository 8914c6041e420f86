"""reserve_stock: units taken from stock under row locks."""

from __future__ import annotations

from typing import Any

import pytest

from orchestration.testing import run_step
from orders.models import Product
from orders.orchestrators import CreateOrder
from orders.tests.support import order_context, step_named

pytestmark = pytest.mark.django_db


def test_reserve_stock_takes_the_units(user: Any, keyboard: Product, cable: Product) -> None:
    outcome = run_step(
        step_named(CreateOrder, "reserve_stock"), order_context(user, (keyboard, 5), (cable, 3))
    )

    assert outcome.ok
    keyboard.refresh_from_db()
    cable.refresh_from_db()
    assert (keyboard.stock, cable.stock) == (0, 97)
    assert outcome.ctx.products[keyboard.pk].stock == 0


def test_reserve_stock_refuses_more_than_available(
    user: Any, keyboard: Product, cable: Product
) -> None:
    outcome = run_step(
        step_named(CreateOrder, "reserve_stock"), order_context(user, (cable, 1), (keyboard, 6))
    )

    assert outcome.error is not None
    assert (outcome.error.status, outcome.error.code) == (409, "out_of_stock")
    assert outcome.error.details == {
        "items": [{"product": keyboard.pk, "requested": 6, "available": 5}]
    }
    assert set(Product.objects.values_list("stock", flat=True)) == {5, 100}


def test_reserve_stock_refuses_a_product_withdrawn_after_validation(
    user: Any, keyboard: Product
) -> None:
    ctx = order_context(user, (keyboard, 1))
    Product.objects.filter(pk=keyboard.pk).update(active=False)

    outcome = run_step(step_named(CreateOrder, "reserve_stock"), ctx)

    assert outcome.error is not None
    assert outcome.error.code == "product_unavailable"
    assert outcome.error.details == {"products": [keyboard.pk]}
