"""Retention: expired run records and finished queued steps go, on a schedule nobody has
to remember (the relay's passes trigger the purge task at most once per PURGE_EVERY)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.core.cache import cache
from django.core.checks import run_checks
from django.core.management import call_command
from django.utils import timezone

from orchestration import retention
from orchestration._tasks_compat import IMMEDIATE_BACKEND
from orchestration.models import QueuedStep, RunRecord
from orchestration.retention import PURGE_CLAIM_KEY, purge_expired, purge_if_due

pytestmark = pytest.mark.django_db

IMMEDIATE = {"default": {"BACKEND": IMMEDIATE_BACKEND}}


@pytest.fixture(autouse=True)
def _no_claim_left_over() -> Iterator[None]:
    # The database cache's table is not emptied between tests the way model tables are.
    cache.delete(PURGE_CLAIM_KEY)
    yield
    cache.delete(PURGE_CLAIM_KEY)


def record(request_id: str, *, age: timedelta, now: datetime | None = None) -> RunRecord:
    return RunRecord.objects.create(
        created=(now or timezone.now()) - age,
        orchestrator="parcel",
        request_id=request_id,
        outcome=RunRecord.Outcome.FAILURE,
        duration_ms=1.0,
    )


def queued_step(
    name: str, state: str, *, age: timedelta, now: datetime | None = None
) -> QueuedStep:
    """A step queued ``age`` ago; a finished one finished then too."""
    at = (now or timezone.now()) - age
    finished = state in ("done", "failed")
    return QueuedStep.objects.create(
        orchestrator="parcel",
        step=name,
        module="parcels.orchestrators",
        request_id=f"req-{name}",
        payload={},
        state=state,
        enqueued_at=at,
        started_at=at if state != "queued" else None,
        finished_at=at if finished else None,
        lease_until=at + timedelta(minutes=5) if state == "running" else None,
    )


# Only the rows these tests seed: on PostgreSQL the records of failed runs in other
# tests are written on a connection of their own, outside the test's transaction.
def remaining_records() -> set[str]:
    return set(RunRecord.objects.filter(orchestrator="parcel").values_list("request_id", flat=True))


def remaining_steps() -> set[str]:
    return set(QueuedStep.objects.filter(orchestrator="parcel").values_list("step", flat=True))


def seed_expired_and_fresh(now: datetime | None = None) -> None:
    long_ago, lately = timedelta(days=31), timedelta(days=29)
    record("old", age=long_ago, now=now)
    record("fresh", age=lately, now=now)
    queued_step("old_done", "done", age=long_ago, now=now)
    queued_step("old_failed", "failed", age=long_ago, now=now)
    queued_step("fresh_done", "done", age=lately, now=now)
    queued_step("fresh_failed", "failed", age=lately, now=now)
    # Never finished: whatever their age, the relay still owes them a delivery.
    queued_step("old_queued", "queued", age=long_ago, now=now)
    queued_step("old_running", "running", age=long_ago, now=now)


def test_expired_records_and_finished_steps_go_fresh_and_unfinished_ones_stay(settings):
    settings.ORCHESTRATION = {
        **settings.ORCHESTRATION,
        "RUN_RECORD_RETENTION_DAYS": 30,
        "QUEUE_RETENTION_DAYS": 30,
    }
    seed_expired_and_fresh()

    assert retention.purge_queued_steps(dry_run=True) == 2
    purged = purge_expired()

    assert purged.as_dict() == {"run_records": 1, "queued_steps": 2}
    assert remaining_records() == {"fresh"}
    assert remaining_steps() == {"fresh_done", "fresh_failed", "old_queued", "old_running"}


def test_each_table_keeps_its_own_retention(settings):
    settings.ORCHESTRATION = {
        **settings.ORCHESTRATION,
        "RUN_RECORD_RETENTION_DAYS": 60,
        "QUEUE_RETENTION_DAYS": 7,
    }
    seed_expired_and_fresh()

    assert purge_expired().as_dict() == {"run_records": 0, "queued_steps": 4}
    assert remaining_records() == {"old", "fresh"}
    assert remaining_steps() == {"old_queued", "old_running"}


def test_the_task_purges_when_a_worker_runs_it(settings):
    settings.TASKS = IMMEDIATE
    seed_expired_and_fresh()
    from orchestration.tasks import purge_expired as purge_task

    result = purge_task.enqueue()

    assert result.return_value == {"run_records": 1, "queued_steps": 2}
    assert remaining_records() == {"fresh"}


def relay_pass(*args: str) -> str:
    out = io.StringIO()
    call_command("relay_queued_steps", *args, stdout=out)
    return out.getvalue()


def test_the_relay_triggers_the_purge_once_per_interval_and_not_more_often(settings):
    settings.TASKS = IMMEDIATE
    settings.ORCHESTRATION = {**settings.ORCHESTRATION, "PURGE_EVERY": 3600.0}
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        seed_expired_and_fresh()
        assert "enqueued the purge" in relay_pass()
        assert remaining_records() == {"fresh"}

        # More rows expire, but passes within the hour (any relay sharing the cache) wait.
        record("expired-later", age=timedelta(days=40))
        for minutes in (1, 30, 59):
            clock.move_to(start + timedelta(minutes=minutes))
            assert "enqueued the purge" not in relay_pass()
        assert remaining_records() == {"fresh", "expired-later"}

        # The first pass after the hour purges again, then the next hour begins.
        clock.move_to(start + timedelta(minutes=60, seconds=30))
        assert "enqueued the purge" in relay_pass()
        assert remaining_records() == {"fresh"}
        clock.move_to(start + timedelta(minutes=61))
        assert "enqueued the purge" not in relay_pass()


def test_the_database_backend_gets_one_purge_task_per_interval(settings):
    from django_tasks_db.models import DBTaskResult

    settings.ORCHESTRATION = {**settings.ORCHESTRATION, "PURGE_EVERY": 600.0}
    start = timezone.now()

    def purge_tasks() -> int:
        return DBTaskResult.objects.filter(task_path="orchestration.tasks.purge_expired").count()

    with time_machine.travel(start, tick=False) as clock:
        # Three relays' passes at once, then one every 30 s for the next ten minutes.
        triggered = [purge_if_due() for _ in range(3)]
        for seconds in range(30, 600, 30):
            clock.move_to(start + timedelta(seconds=seconds))
            triggered.append(purge_if_due())
        assert triggered.count(True) == 1
        assert purge_tasks() == 1

        clock.move_to(start + timedelta(seconds=601))
        assert purge_if_due()
        assert purge_tasks() == 2


def test_the_trigger_can_be_turned_off(settings):
    settings.TASKS = IMMEDIATE
    seed_expired_and_fresh()

    assert "enqueued the purge" not in relay_pass("--no-purge")
    settings.ORCHESTRATION = {**settings.ORCHESTRATION, "PURGE_EVERY": 0.0}
    assert "enqueued the purge" not in relay_pass()

    assert remaining_records() == {"old", "fresh"}


def test_a_purge_that_could_not_be_enqueued_is_tried_again_at_the_next_pass(monkeypatch):
    from orchestration import tasks

    def backend_down(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("the task backend is down")

    with monkeypatch.context() as patched:
        patched.setattr(type(tasks.purge_expired), "enqueue", backend_down)
        assert purge_if_due() is False
    assert purge_if_due() is True  # the claim was released, not held for an hour
    assert purge_if_due() is False


def test_retention_settings_out_of_range_are_check_errors(settings):
    settings.ORCHESTRATION = {"QUEUE_RETENTION_DAYS": 0, "PURGE_EVERY": -1}

    messages = {
        m.id: m.msg for m in run_checks() if m.id in ("orchestration.E006", "orchestration.E007")
    }

    assert messages == {
        "orchestration.E006": "ORCHESTRATION['QUEUE_RETENTION_DAYS'] must be at least 1, not 0.",
        "orchestration.E007": "ORCHESTRATION['PURGE_EVERY'] must not be negative, not -1.",
    }
    settings.ORCHESTRATION = {"QUEUE_RETENTION_DAYS": 1, "PURGE_EVERY": 0}
    assert not [m for m in run_checks() if m.id in ("orchestration.E006", "orchestration.E007")]
