from __future__ import annotations

from django.db import IntegrityError, transaction

from orchestration import Conflict
from orders.idempotency import IN_PROGRESS, find_conflict
from orders.models import IdempotencyRecord
from orders.types import CreateOrderContext


def claim_idempotency_key(ctx: CreateOrderContext) -> CreateOrderContext:
    """Record the key in this run's transaction, so that it is consumed only on success.

    Two requests racing with the same key both get past the view's lookup; the
    unique constraint lets one insert win, and the other (which waits for the
    winner's commit on PostgreSQL) is answered with a 409.
    """
    key = ctx.input.idempotency_key
    assert key is not None  # the step runs only `when=has_idempotency_key`
    fingerprint = ctx.input.fingerprint
    try:
        with transaction.atomic():
            ctx.idempotency_record = IdempotencyRecord.objects.create(
                user=ctx.user, key=key, fingerprint=fingerprint
            )
    except IntegrityError:
        existing = IdempotencyRecord.objects.filter(user=ctx.user, key=key).first()
        code, message = (existing and find_conflict(existing, fingerprint)) or IN_PROGRESS
        raise Conflict(message, code=code) from None
    return ctx
