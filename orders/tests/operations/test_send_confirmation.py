"""send_confirmation: the confirmation mail (best effort, after commit)."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest
from django.core import mail

from orchestration.testing import run_step
from orders.models import Product
from orders.orchestrators import CreateOrder
from orders.tests.support import placed_context, step_named

pytestmark = pytest.mark.django_db


def test_send_confirmation_mails_the_owner(user: Any, keyboard: Product) -> None:
    ctx = placed_context(user, (keyboard, 2))

    outcome = run_step(step_named(CreateOrder, "send_confirmation"), ctx)

    assert outcome.ok
    [message] = mail.outbox
    assert message.to == ["alice@example.com"]
    assert f"Order #{ctx.placed_order().pk} confirmed" == message.subject
    assert "2 x Keyboard" in message.body


def test_send_confirmation_is_skipped_without_an_address(user: Any, keyboard: Product) -> None:
    user.email = ""
    ctx = placed_context(user, (keyboard, 1))

    outcome = run_step(step_named(CreateOrder, "send_confirmation"), ctx)

    assert outcome.record.status == "skipped"
    assert mail.outbox == []


def test_send_confirmation_reports_a_mail_outage_as_email_unavailable(
    user: Any, keyboard: Product
) -> None:
    ctx = placed_context(user, (keyboard, 1))

    with mock.patch(
        "django.core.mail.backends.locmem.EmailBackend.send_messages",
        side_effect=ConnectionRefusedError(111, "refused"),
    ):
        outcome = run_step(step_named(CreateOrder, "send_confirmation"), ctx)

    assert outcome.error is not None
    assert (outcome.error.code, outcome.error.status) == ("email_unavailable", 503)
    assert outcome.ctx.errors == [outcome.error]
