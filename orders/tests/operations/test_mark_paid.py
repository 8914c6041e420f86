"""mark_paid: the charge recorded on the order."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from orchestration.testing import run_step
from orders.models import Order, Product
from orders.orchestrators import CreateOrder
from orders.payments import Charge
from orders.tests.support import placed_context, step_named

pytestmark = pytest.mark.django_db


def test_mark_paid_records_the_charge(user: Any, keyboard: Product) -> None:
    ctx = placed_context(user, (keyboard, 1))
    ctx.charge = Charge(id="ch_4", amount=Decimal("89.00"))

    outcome = run_step(step_named(CreateOrder, "mark_paid"), ctx)

    assert outcome.ok
    order = Order.objects.get()
    assert (order.status, order.payment_reference) == (Order.Status.PAID, "ch_4")
