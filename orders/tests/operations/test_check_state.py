"""check_state: only a paid order can be cancelled."""

from __future__ import annotations

from typing import Any

import pytest

from orchestration.testing import run_step
from orders.models import Order, Product
from orders.orchestrators import CancelOrder
from orders.tests.support import cancel_context, place_paid_order, step_named

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("status", "allowed"),
    [(Order.Status.PAID, True), (Order.Status.CANCELLED, False), (Order.Status.PENDING, False)],
)
def test_check_state_allows_only_paid_orders(
    user: Any, keyboard: Product, status: str, allowed: bool
) -> None:
    order = place_paid_order(user, (keyboard, 1))
    order.status = status

    outcome = run_step(
        step_named(CancelOrder, "check_state"), cancel_context(user, order, order=order)
    )

    assert outcome.ok is allowed
    if not allowed:
        assert outcome.error is not None
        assert (outcome.error.status, outcome.error.code) == (409, "order_not_cancellable")
