"""refund_order: the charge refunded through the gateway."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from unittest import mock

import pytest

from orchestration import ServiceUnavailable
from orchestration.testing import run_step
from orders.models import Product
from orders.orchestrators import CancelOrder
from orders.payments import FakeGateway, Refund
from orders.tests.support import cancel_context, place_paid_order, step_named

pytestmark = pytest.mark.django_db


def test_refund_order_refunds_the_charge_and_records_it(
    user: Any, keyboard: Product, gateway: FakeGateway
) -> None:
    order = place_paid_order(user, (keyboard, 2))

    outcome = run_step(
        step_named(CancelOrder, "refund_order"), cancel_context(user, order, order=order)
    )

    assert outcome.ok
    refund = gateway.refunds[order.payment_reference]
    assert refund.amount == Decimal("178.00")
    order.refresh_from_db()
    assert order.refund_reference == refund.id


def test_refund_order_retries_an_unavailable_gateway(user: Any, keyboard: Product) -> None:
    order = place_paid_order(user, (keyboard, 1))
    gateway = mock.Mock(spec=FakeGateway)
    gateway.refund.side_effect = [
        ServiceUnavailable(),
        Refund(id="re_1", charge_id=order.payment_reference, amount=order.total),
    ]

    with mock.patch("orders.operations.refund_order.get_gateway", return_value=gateway):
        outcome = run_step(
            step_named(CancelOrder, "refund_order"), cancel_context(user, order, order=order)
        )

    assert outcome.ok
    assert outcome.record.attempts == 2
    order.refresh_from_db()
    assert order.refund_reference == "re_1"


def test_refund_order_is_skipped_for_an_order_never_charged(user: Any, keyboard: Product) -> None:
    order = place_paid_order(user, (keyboard, 1))
    order.payment_reference = ""

    outcome = run_step(
        step_named(CancelOrder, "refund_order"), cancel_context(user, order, order=order)
    )

    assert outcome.record.status == "skipped"
