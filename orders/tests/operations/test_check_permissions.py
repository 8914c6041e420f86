"""check_permissions: who may place an order."""

from __future__ import annotations

from typing import Any

import pytest

from orchestration.testing import run_step
from orders.orchestrators import CreateOrder
from orders.tests.support import order_context, step_named

pytestmark = pytest.mark.django_db


def test_check_permissions_lets_an_active_user_order(user: Any) -> None:
    outcome = run_step(step_named(CreateOrder, "check_permissions"), order_context(user))

    assert outcome.ok


def test_check_permissions_refuses_anonymous_and_disabled_users(user: Any) -> None:
    anonymous = run_step(step_named(CreateOrder, "check_permissions"), order_context(None))
    user.is_active = False
    disabled = run_step(step_named(CreateOrder, "check_permissions"), order_context(user))

    assert anonymous.error is not None
    assert anonymous.error.status == 401
    assert disabled.error is not None
    assert disabled.error.code == "permission_denied"
