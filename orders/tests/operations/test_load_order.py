"""load_order: the caller's order, or 404."""

from __future__ import annotations

from typing import Any

import pytest

from orchestration.testing import run_step
from orders.models import Product
from orders.orchestrators import CancelOrder
from orders.tests.support import cancel_context, place_paid_order, step_named

pytestmark = pytest.mark.django_db


def test_load_order_finds_the_callers_order(user: Any, keyboard: Product) -> None:
    order = place_paid_order(user, (keyboard, 1))

    outcome = run_step(step_named(CancelOrder, "load_order"), cancel_context(user, order))

    assert outcome.ok
    assert outcome.ctx.order == order


def test_load_order_hides_another_users_order(
    user: Any, other_user: Any, keyboard: Product
) -> None:
    order = place_paid_order(user, (keyboard, 1))

    outcome = run_step(step_named(CancelOrder, "load_order"), cancel_context(other_user, order))

    assert outcome.error is not None
    assert (outcome.error.status, outcome.error.code) == (404, "order_not_found")
