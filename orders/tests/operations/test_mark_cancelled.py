"""mark_cancelled: status and time of the cancellation."""

from __future__ import annotations

from typing import Any

import pytest

from orchestration.testing import run_step
from orders.models import Order, Product
from orders.orchestrators import CancelOrder
from orders.tests.support import cancel_context, place_paid_order, step_named

pytestmark = pytest.mark.django_db


def test_mark_cancelled_sets_status_and_time(user: Any, keyboard: Product) -> None:
    order = place_paid_order(user, (keyboard, 1))

    outcome = run_step(
        step_named(CancelOrder, "mark_cancelled"), cancel_context(user, order, order=order)
    )

    assert outcome.ok
    order.refresh_from_db()
    assert order.status == Order.Status.CANCELLED
    assert order.cancelled_at is not None
