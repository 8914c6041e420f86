"""After-commit steps as queued tasks: the outbox, the worker side, the relay (in process)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone

from orchestration import DefinitionError, Step
from orchestration._tasks_compat import DUMMY_BACKEND, IMMEDIATE_BACKEND
from orchestration.models import QueuedStep
from orchestration.outbox import relay, run_queued
from orchestration.payload import decode, encode
from orchestration.testing import run_queued_steps
from tests.orchestration.outbox_pipelines import SEEN, Line, define_note_orchestrator

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _clear_seen():
    SEEN.clear()


@pytest.fixture
def note_orchestrator():
    return define_note_orchestrator()


def test_the_run_queues_its_after_commit_steps_and_the_response_says_so(note_orchestrator):
    result = note_orchestrator().execute(["a"], request_id="req-1")

    assert result.success
    assert result.step("note").status == "queued"
    assert result.queued == ["note"]
    assert result.step("mail").status == "skipped"  # `when` is decided in the request
    assert "note" not in result.metrics
    [entry] = QueuedStep.objects.all()
    assert (entry.orchestrator, entry.step, entry.state) == ("outbox_notes", "note", "queued")
    assert entry.request_id == "req-1"
    assert SEEN == []  # nothing ran in the request


def test_the_worker_rebuilds_the_declared_fields_and_reads_models_again(note_orchestrator):
    note_orchestrator().execute(["a"], request_id="req-2")
    Group.objects.filter(name="a").update(name="renamed after the commit")

    assert run_queued_steps() == {"note": "ok"}

    [seen] = SEEN
    entry = QueuedStep.objects.get()
    assert seen == {
        "group": "renamed after the commit",  # the committed row, not a snapshot
        "lines": (Line("kb", Decimal("9.99")),),
        "scratch": [],  # not declared: its default
        "has_names": False,  # required but not declared: left unset
        "request_id": "req-2",
        "dedupe_key": str(entry.pk),
    }
    assert entry.state == "done"
    assert entry.attempts == 1
    assert entry.time_in_queue is not None


def test_a_redelivered_task_for_a_done_step_runs_nothing(note_orchestrator):
    note_orchestrator().execute(["a"])
    entry = QueuedStep.objects.get()

    assert run_queued(str(entry.pk)) == "ok"
    assert run_queued(str(entry.pk)) == "duplicate"

    assert len(SEEN) == 1
    entry.refresh_from_db()
    assert entry.attempts == 1


def test_a_step_running_under_a_live_lease_is_not_run_twice(note_orchestrator):
    note_orchestrator().execute(["a"])
    future = timezone.now() + timedelta(minutes=5)
    QueuedStep.objects.update(state="running", lease_until=future, attempts=1)

    assert run_queued(str(QueuedStep.objects.get().pk)) == "duplicate"
    assert relay() == 0
    assert SEEN == []


def test_the_relay_hands_a_dead_workers_step_to_another_worker(note_orchestrator):
    note_orchestrator().execute(["a"])
    past = timezone.now() - timedelta(seconds=1)
    QueuedStep.objects.update(state="running", lease_until=past, attempts=1)

    assert relay() == 1
    entry = QueuedStep.objects.get()
    assert entry.dispatches == 1
    assert run_queued(str(entry.pk)) == "ok"
    entry.refresh_from_db()
    assert (entry.state, entry.attempts) == ("done", 2)
    assert len(SEEN) == 1


def test_a_step_that_fails_with_an_outage_is_queued_again_then_failed(settings, note_orchestrator):
    settings.ORCHESTRATION = {**settings.ORCHESTRATION, "QUEUE_MAX_ATTEMPTS": 2}
    note_orchestrator().execute(["a", "mail too"])
    mail = QueuedStep.objects.get(step="mail")

    assert run_queued(str(mail.pk)) == "requeued"
    mail.refresh_from_db()
    assert mail.state == "queued"
    assert mail.last_error == "email_unavailable: mail down"
    assert mail.next_dispatch_at > timezone.now()
    assert relay() == 0  # not due yet

    QueuedStep.objects.filter(pk=mail.pk).update(next_dispatch_at=timezone.now())
    assert relay() == 1
    assert run_queued(str(mail.pk)) == "failed"
    mail.refresh_from_db()
    assert (mail.state, mail.attempts) == ("failed", 2)


def test_steps_queued_inside_an_outer_transaction_go_with_it(note_orchestrator):
    with transaction.atomic():
        result = note_orchestrator().execute(["a"])
        assert result.queued == ["note"]
        assert QueuedStep.objects.count() == 1
        transaction.set_rollback(True)  # the caller's transaction rolls back

    assert QueuedStep.objects.count() == 0
    assert run_queued_steps() == {}


def test_a_run_that_fails_queues_nothing(note_orchestrator):
    Group.objects.create(name="a")

    result = note_orchestrator().execute(["a"])  # unique name: create fails

    assert not result.success
    assert QueuedStep.objects.count() == 0


def test_a_missing_row_is_reported_not_run():
    assert run_queued("00000000-0000-0000-0000-000000000000") == "missing"


@pytest.mark.django_db(transaction=True)
def test_the_immediate_backend_runs_the_step_after_the_commit(settings, note_orchestrator):
    settings.TASKS = {"default": {"BACKEND": IMMEDIATE_BACKEND}}

    result = note_orchestrator().execute(["a"])

    assert result.queued == ["note"]
    assert [seen["group"] for seen in SEEN] == ["a"]
    assert QueuedStep.objects.get().state == "done"


@pytest.mark.django_db(transaction=True)
def test_the_database_backend_stores_the_task_in_the_runs_transaction(note_orchestrator):
    from django_tasks_db.models import DBTaskResult

    note_orchestrator().execute(["a"])

    [task] = DBTaskResult.objects.all()
    assert task.task_path == "orchestration.tasks.run_queued_step"
    assert task.args_kwargs["args"] == [str(QueuedStep.objects.get().pk)]
    assert QueuedStep.objects.get().next_dispatch_at is None  # no relay needed


def test_values_survive_the_round_trip():
    group = Group.objects.create(name="g")
    value = {1: (Line("a", Decimal("1.50")),), "g": group, "at": timezone.now(), "n": [None]}

    restored = decode(encode(value))

    assert restored == value


def test_uses_only_with_after_commit_and_only_field_names():
    with pytest.raises(DefinitionError, match="after-commit"):
        Step("x", lambda ctx: ctx, uses=("order",))
    with pytest.raises(DefinitionError, match="tuple of context field names"):
        Step("x", lambda ctx: ctx, critical=False, after_commit=True, uses="order")


def test_a_field_that_cannot_be_queued_is_a_programming_error():
    with pytest.raises(DefinitionError, match="cannot be queued"):
        encode_context_with_object()


def encode_context_with_object():
    from orchestration.payload import snapshot
    from tests.orchestration.outbox_pipelines import NoteContext

    ctx = NoteContext(names=["a"], metadata={"handle": object()})
    return snapshot(ctx, (), step="note")


@pytest.mark.django_db(transaction=True)
def test_the_tasks_of_a_run_are_one_insert_and_the_database_worker_runs_them(note_orchestrator):
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django_tasks_db.models import DBTaskResult

    with CaptureQueriesContext(connection) as queries:
        result = note_orchestrator().execute(["a", "b"])

    assert result.queued == ["note", "mail"]
    sql = [query["sql"] for query in queries.captured_queries]
    tasks = [text for text in sql if 'INSERT INTO "django_tasks_database_dbtaskresult"' in text]
    steps = [text for text in sql if 'INSERT INTO "orchestration_queuedstep"' in text]
    assert len(tasks) == 1
    assert len(steps) == 1
    if connection.vendor == "postgresql":  # one statement for both (orchestration.batch)
        assert tasks == steps
    [task] = DBTaskResult.objects.all()  # one task for the run's two steps
    assert sorted(task.args_kwargs["args"]) == sorted(
        str(pk) for pk in QueuedStep.objects.values_list("pk", flat=True)
    )
    assert task.status == "READY"

    call_command("db_worker", batch=True, no_startup_delay=True, verbosity=0)

    # The worker handed the second step on as a task of its own, and ran both.
    tasks = DBTaskResult.objects.order_by("enqueued_at")
    assert [len(task.args_kwargs["args"]) for task in tasks] == [2, 1]
    assert {task.status for task in tasks} == {"SUCCESSFUL"}
    states = dict(QueuedStep.objects.values_list("step", "state"))
    assert states["note"] == "done"
    assert states["mail"] in ("queued", "failed")  # the mail server is down: queued again
    assert [seen["group"] for seen in SEEN] == ["a"]


def test_a_step_the_worker_cannot_hand_on_is_made_due_for_the_relay(note_orchestrator, monkeypatch):
    from orchestration import outbox
    from orchestration.tasks import run_queued_step

    note_orchestrator().execute(["a", "b"])
    note, mail = (str(QueuedStep.objects.get(step=name).pk) for name in ("note", "mail"))

    def broken_queue(*args: object) -> None:
        raise ConnectionError("the queue is down")

    monkeypatch.setattr(run_queued_step.get_backend(), "enqueue", broken_queue)
    assert run_queued_step.call(note, mail) == "ok"  # the first step still runs

    assert QueuedStep.objects.get(pk=note).state == "done"
    handed_on = QueuedStep.objects.get(pk=mail)
    assert handed_on.state == "queued"
    assert handed_on.next_dispatch_at <= timezone.now()
    dispatched: list[str] = []
    monkeypatch.setattr(outbox, "_dispatch", dispatched.extend)
    assert relay() == 1
    assert dispatched == [mail]


@pytest.mark.django_db(transaction=True)
def test_on_another_backend_a_run_is_one_task_after_the_commit_and_a_lost_one_is_relayed(
    settings, note_orchestrator, monkeypatch
):
    from orchestration.tasks import run_queued_step

    settings.TASKS = {"default": {"BACKEND": DUMMY_BACKEND}}
    backend = run_queued_step.get_backend()

    note_orchestrator().execute(["a", "b"])

    [task] = backend.results  # one task for the run's two steps, sent after the commit
    assert sorted(task.args) == sorted(
        str(pk) for pk in QueuedStep.objects.values_list("pk", flat=True)
    )

    def broken_queue(*args: object) -> None:
        raise ConnectionError("the queue is down")

    monkeypatch.setattr(backend, "enqueue", broken_queue)
    QueuedStep.objects.all().delete()
    result = note_orchestrator().execute(["c", "d"])

    assert result.success  # the rows are committed; only the dispatch was lost
    assert QueuedStep.objects.count() == 2
    assert relay() == 0  # not due yet: the relay waits QUEUE_RELAY_AFTER
    QueuedStep.objects.update(next_dispatch_at=timezone.now())
    dispatched: list[str] = []
    from orchestration import outbox

    monkeypatch.setattr(outbox, "_dispatch", dispatched.extend)
    assert relay() == 2
    assert sorted(dispatched) == sorted(
        str(pk) for pk in QueuedStep.objects.values_list("pk", flat=True)
    )
