"""restock: the units go back to stock."""

from __future__ import annotations

from typing import Any

import pytest

from orchestration.testing import run_step
from orders.models import Product
from orders.orchestrators import CancelOrder
from orders.tests.support import cancel_context, place_paid_order, step_named

pytestmark = pytest.mark.django_db


def test_restock_puts_the_units_back(user: Any, keyboard: Product, cable: Product) -> None:
    order = place_paid_order(user, (keyboard, 2), (cable, 7))

    outcome = run_step(step_named(CancelOrder, "restock"), cancel_context(user, order, order=order))

    assert outcome.ok
    assert dict(Product.objects.values_list("name", "stock")) == {"Keyboard": 5, "Cable": 100}
