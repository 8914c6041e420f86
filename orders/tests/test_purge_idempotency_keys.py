"""manage.py purge_idempotency_keys: old keys go, recent ones and their orders stay."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from orders.models import IdempotencyRecord, Order, Product
from orders.tests.support import place_paid_order


def record(user: Any, key: str, age_days: int, order: Order | None = None) -> None:
    IdempotencyRecord.objects.create(user=user, key=key, fingerprint="f" * 64, order=order)
    IdempotencyRecord.objects.filter(key=key).update(
        created=timezone.now() - timedelta(days=age_days)
    )


def keys() -> list[str]:
    return sorted(IdempotencyRecord.objects.values_list("key", flat=True))


@pytest.mark.django_db
def test_records_older_than_the_window_are_deleted(user: Any, keyboard: Product) -> None:
    order = place_paid_order(user, (keyboard, 1))
    record(user, "old-with-order", 30, order)
    record(user, "old", 8)
    record(user, "recent", 2)
    out = StringIO()

    call_command("purge_idempotency_keys", "--days=7", stdout=out)

    assert keys() == ["recent"]
    assert "Deleted 2 idempotency record(s) older than 7 day(s)." in out.getvalue()
    assert Order.objects.filter(pk=order.pk).exists()


@pytest.mark.django_db
def test_a_dry_run_counts_and_deletes_nothing(user: Any) -> None:
    record(user, "old", 10)
    out = StringIO()

    call_command("purge_idempotency_keys", "--dry-run", stdout=out)

    assert keys() == ["old"]
    assert "Would delete 1 idempotency record(s) older than 7 day(s)." in out.getvalue()


@pytest.mark.django_db
@pytest.mark.parametrize("days", ["0", "-3"])
def test_a_window_under_one_day_is_refused(user: Any, days: str) -> None:
    record(user, "old", 10)

    with pytest.raises(CommandError, match="--days must be at least 1"):
        call_command("purge_idempotency_keys", f"--days={days}")

    assert keys() == ["old"]
