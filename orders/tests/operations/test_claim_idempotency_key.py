"""claim_idempotency_key: one stored key per user and Idempotency-Key."""

from __future__ import annotations

from typing import Any

import pytest

from orchestration.testing import run_step
from orders.models import IdempotencyRecord, Product
from orders.orchestrators import CreateOrder
from orders.tests.support import order_context, step_named

pytestmark = pytest.mark.django_db


def test_claim_idempotency_key_records_the_key(user: Any, keyboard: Product) -> None:
    ctx = order_context(user, (keyboard, 1), key="key-1")

    outcome = run_step(step_named(CreateOrder, "claim_idempotency_key"), ctx)

    assert outcome.ok
    record = IdempotencyRecord.objects.get(user=user, key="key-1")
    assert record.fingerprint == ctx.input.fingerprint
    assert record.response_status is None


@pytest.mark.parametrize(
    ("stored_fingerprint", "code"),
    [("another-body", "idempotency_key_reused"), (None, "idempotency_request_in_progress")],
)
def test_claim_idempotency_key_refuses_a_taken_key(
    user: Any, keyboard: Product, stored_fingerprint: str | None, code: str
) -> None:
    ctx = order_context(user, (keyboard, 1), key="key-1")
    IdempotencyRecord.objects.create(
        user=user, key="key-1", fingerprint=stored_fingerprint or ctx.input.fingerprint
    )

    outcome = run_step(step_named(CreateOrder, "claim_idempotency_key"), ctx)

    assert outcome.error is not None
    assert (outcome.error.status, outcome.error.code) == (409, code)
    assert IdempotencyRecord.objects.count() == 1


def test_a_key_is_per_user(user: Any, other_user: Any, keyboard: Product) -> None:
    IdempotencyRecord.objects.create(user=other_user, key="shared", fingerprint="x")

    outcome = run_step(
        step_named(CreateOrder, "claim_idempotency_key"),
        order_context(user, (keyboard, 1), key="shared"),
    )

    assert outcome.ok
