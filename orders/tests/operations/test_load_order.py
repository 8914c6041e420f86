"""load_order: the caller's order, or 404."""

from __future__ import annotations

from typing import Any

import pytest

from orchestration.testing import make_context, run_step
from orders.models import Product
from orders.orchestrators import CancelOrder
from orders.tests.support import cancel_context, place_paid_order, step_named
from orders.types import CancelOrderContext, CancelOrderInput

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
    assert (outcome.error.status, outcome.error.code) == (404, "not_found")


def test_an_operator_loads_any_customers_order_with_the_permission(
    user: Any, django_user_model: Any, keyboard: Product
) -> None:
    order = place_paid_order(user, (keyboard, 1))
    operator = django_user_model.objects.create_superuser("ops", "ops@example.com", "x")
    clerk = django_user_model.objects.create_user("clerk", "clerk@example.com", "x")
    step = step_named(CancelOrder, "load_order")

    def as_operator(actor: Any) -> Any:
        ctx = make_context(
            CancelOrderContext,
            input=CancelOrderInput(order_id=order.pk, any_owner=True),
            user=actor,
        )
        return run_step(step, ctx)

    allowed, refused = as_operator(operator), as_operator(clerk)

    assert allowed.ok
    assert allowed.ctx.order == order
    assert refused.error is not None
    assert (refused.error.status, refused.error.code) == (403, "permission_denied")
