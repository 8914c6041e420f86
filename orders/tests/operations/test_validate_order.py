"""validate_order: the request body read into typed lines and a payment token."""

from __future__ import annotations

from typing import Any

import pytest

from orchestration.testing import make_context, run_step
from orders.models import Product
from orders.orchestrators import CreateOrder
from orders.tests.support import order_body, step_named
from orders.types import CreateOrderContext, CreateOrderInput, OrderLine

pytestmark = pytest.mark.django_db


def test_validate_order_reads_lines_and_token(user: Any, keyboard: Product, cable: Product) -> None:
    ctx = make_context(
        CreateOrderContext,
        input=CreateOrderInput(data=order_body((keyboard, 2), (cable, 1), token="tok_visa")),
        user=user,
    )

    outcome = run_step(step_named(CreateOrder, "validate_order"), ctx)

    assert outcome.ok
    assert outcome.ctx.lines == (OrderLine(keyboard.pk, 2), OrderLine(cable.pk, 1))
    assert outcome.ctx.payment_token == "tok_visa"


def test_validate_order_reports_field_errors(user: Any, keyboard: Product) -> None:
    data = {"items": [{"product": keyboard.pk, "quantity": 0}], "total": "0.01"}
    ctx = make_context(CreateOrderContext, input=CreateOrderInput(data=data), user=user)

    outcome = run_step(step_named(CreateOrder, "validate_order"), ctx)

    assert outcome.error is not None
    assert (outcome.error.status, outcome.error.code) == (400, "validation_failed")
    assert set(outcome.error.details) == {"items", "payment_token", "total"}
    assert outcome.ctx.lines == ()
