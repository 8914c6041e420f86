"""notify_cancellation: the cancellation mail (best effort)."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import mail

from orchestration.testing import run_step
from orders.models import Product
from orders.orchestrators import CancelOrder
from orders.payments import Refund
from orders.tests.support import cancel_context, place_paid_order, step_named

pytestmark = pytest.mark.django_db


def test_notify_cancellation_mails_the_owner(user: Any, keyboard: Product) -> None:
    order = place_paid_order(user, (keyboard, 1))
    refund = Refund(id="re_2", charge_id=order.payment_reference, amount=order.total)

    outcome = run_step(
        step_named(CancelOrder, "notify_cancellation"),
        cancel_context(user, order, order=order, refund=refund),
    )

    assert outcome.ok
    [message] = mail.outbox
    assert message.to == [user.email]
    assert message.subject == f"Order #{order.pk} cancelled"
    assert "89.00 will be refunded" in message.body
