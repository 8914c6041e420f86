"""charge_payment and its compensation refund_charge."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from unittest import mock

import pytest

from orchestration import PaymentRequired, ServiceUnavailable
from orchestration.journal import Effect
from orchestration.models import EffectRecord
from orchestration.testing import run_step
from orders.models import Order, Product
from orders.operations.charge_payment import REFUND_TIMEOUT, refund_charge, refund_lost_charge
from orders.orchestrators import CreateOrder
from orders.payments import Charge, FakeGateway
from orders.tests.support import order_context, placed_context, step_named

pytestmark = pytest.mark.django_db


def test_charge_payment_charges_the_order_total(user: Any, keyboard: Product) -> None:
    ctx = placed_context(user, (keyboard, 2))
    gateway = mock.Mock(spec=FakeGateway)
    gateway.charge.return_value = Charge(id="ch_1", amount=Decimal("178.00"))

    with mock.patch("orders.operations.charge_payment.get_gateway", return_value=gateway):
        outcome = run_step(step_named(CreateOrder, "charge_payment"), ctx)

    assert outcome.ok
    assert outcome.ctx.charge == Charge(id="ch_1", amount=Decimal("178.00"))
    kwargs = gateway.charge.call_args.kwargs
    assert (kwargs["amount"], kwargs["token"]) == (Decimal("178.00"), "tok_visa")
    assert Order.objects.get().status == Order.Status.PENDING


def test_charge_payment_retries_a_transient_failure(user: Any, keyboard: Product) -> None:
    ctx = placed_context(user, (keyboard, 1))
    gateway = mock.Mock(spec=FakeGateway)
    gateway.charge.side_effect = [ServiceUnavailable(), Charge(id="ch_2", amount=Decimal("89"))]

    with mock.patch("orders.operations.charge_payment.get_gateway", return_value=gateway):
        outcome = run_step(step_named(CreateOrder, "charge_payment"), ctx)

    assert outcome.ok
    assert outcome.record.attempts == 2
    keys = {call.kwargs["idempotency_key"] for call in gateway.charge.call_args_list}
    # Both attempts asked for the capture under the one key the journal recorded.
    assert len(keys) == 1
    assert EffectRecord.objects.get(key=keys.pop()).state == "settled"


def test_charge_payment_does_not_retry_a_declined_card(user: Any, keyboard: Product) -> None:
    ctx = placed_context(user, (keyboard, 1))
    gateway = mock.Mock(spec=FakeGateway)
    gateway.charge.side_effect = PaymentRequired()

    with mock.patch("orders.operations.charge_payment.get_gateway", return_value=gateway):
        outcome = run_step(step_named(CreateOrder, "charge_payment"), ctx)

    assert outcome.error is not None
    assert (outcome.error.status, outcome.error.code) == (402, "payment_declined")
    assert outcome.record.attempts == 1


def test_refund_charge_refunds_what_was_charged(user: Any) -> None:
    ctx = order_context(user, charge=Charge(id="ch_3", amount=Decimal("12.00")))
    gateway = mock.Mock(spec=FakeGateway)

    with mock.patch("orders.operations.charge_payment.get_gateway", return_value=gateway):
        refund_charge(ctx)
        refund_charge(order_context(user))

    gateway.refund.assert_called_once_with(
        charge_id="ch_3", amount=Decimal("12.00"), timeout=REFUND_TIMEOUT
    )


def test_refund_lost_charge_refunds_what_the_gateway_captured_under_the_key(
    gateway: FakeGateway,
) -> None:
    charge = gateway.charge(amount=Decimal("30.00"), token="tok_visa", idempotency_key="lost-1")

    refund_lost_charge(Effect(key="lost-1", orchestrator="create_order", step="charge_payment"))
    refund_lost_charge(Effect(key="never", orchestrator="create_order", step="charge_payment"))
    refund_lost_charge(Effect(key="lost-1", orchestrator="create_order", step="charge_payment"))

    assert list(gateway.refunds) == [charge.id]
    assert gateway.refunds[charge.id].amount == Decimal("30.00")
