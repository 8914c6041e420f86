"""The effect journal: intent before the call, settled with the run, undone when it is not.

An in-memory "external system" keeps its own books by key, as a payment
processor does; the tests check what the journal and the recovery make it do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ClassVar

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from orchestration import BaseOrchestrator, DefinitionError, OperationContext, Step, registry
from orchestration.journal import (
    COMPENSATED,
    PENDING,
    ROLLBACK_INCOMPLETE,
    ROLLED_BACK,
    SETTLED,
    Effect,
)
from orchestration.metrics import JOURNAL_REGISTRY
from orchestration.models import EffectRecord
from orchestration.recovery import purge_effects, recover_effects

pytestmark = pytest.mark.django_db(transaction=True)

LATER = timedelta(hours=1)


class Ledger:
    """An external system's books: what it did under each key, and what it undid."""

    def __init__(self) -> None:
        self.done: dict[str, int] = {}
        self.undone: list[str] = []
        self.undo_failures = 0
        #: Called with the key at the start of each undo (a test's probe).
        self.before_undo: Any = None

    def do(self, key: str) -> None:
        self.done[key] = self.done.get(key, 0) + 1

    def undo(self, key: str) -> None:
        if self.before_undo is not None:
            self.before_undo(key)
        if self.undo_failures:
            self.undo_failures -= 1
            raise ConnectionError("the external system did not answer")
        if key in self.done and key not in self.undone:
            self.undone.append(key)


ledger = Ledger()


@dataclass(kw_only=True, eq=False)
class ShipContext(OperationContext):
    fail_after: bool = False
    crash: bool = False
    keys: list[str] = field(default_factory=list)


class Killed(BaseException):
    """Stands for the process dying mid-run: nothing of the engine runs after it."""


def book_label(ctx: ShipContext) -> ShipContext:
    key = ctx.effect_key()
    ctx.keys.append(key)
    ledger.do(key)
    Group.objects.create(name=f"label-{key[:8]}")
    if ctx.crash:
        raise Killed
    return ctx


def cancel_label(effect: Effect) -> None:
    ledger.undo(effect.key)


def write_shipment(ctx: ShipContext) -> ShipContext:
    if ctx.fail_after:
        raise RuntimeError("the shipment could not be written")
    return ctx


with registry.isolated():  # registered per test, below: recovery finds steps in the registry

    class Ship(BaseOrchestrator[ShipContext, list[str], dict[str, Any]]):
        pipeline: ClassVar = (
            Step("book_label", book_label, recover=cancel_label),
            Step("write_shipment", write_shipment),
        )

        def initialize_context(self, input: dict[str, Any], **kwargs: Any) -> ShipContext:
            return ShipContext(**input, **kwargs)

        def build_result(self, ctx: ShipContext) -> list[str]:
            return ctx.keys


@pytest.fixture(autouse=True)
def clean(settings: Any) -> None:
    global ledger
    ledger = Ledger()
    EffectRecord.objects.all().delete()
    registry.register(Ship)  # undone after the test (tests/orchestration/conftest.py)
    settings.ORCHESTRATION = {**settings.ORCHESTRATION, "EFFECT_LEASE": 60.0}


def entry(key: str) -> EffectRecord:
    return EffectRecord.objects.get(key=key)


def test_a_committed_run_settles_its_entry_and_sent_the_journal_key() -> None:
    result = Ship().execute({})

    assert result.success, result.error
    [key] = result.data
    assert ledger.done == {key: 1}
    record = entry(key)
    assert (record.state, record.orchestrator, record.step) == (SETTLED, "ship", "book_label")
    assert record.request_id == result.request_id


def test_the_key_is_stable_for_the_same_user_and_client_key_only(
    django_user_model: Any,
) -> None:
    alice = django_user_model.objects.create_user("alice")
    bob = django_user_model.objects.create_user("bob")

    first = Ship().execute({"fail_after": True}, user=alice, idempotency_key="k-1")
    retry = Ship().execute({}, user=alice, idempotency_key="k-1")
    other_user = Ship().execute({}, user=bob, idempotency_key="k-1")
    no_key = [Ship().execute({}, user=alice).data[0] for _ in range(2)]

    # The failed first run rolled its effect back and said so: its retry is a new
    # attempt under the next key, never the undone one.
    assert first.data is None
    assert retry.success
    assert entry(retry.data[0]).state == SETTLED
    assert len({retry.data[0], other_user.data[0], *no_key}) == 4


def test_a_failed_run_undoes_its_effect_at_once() -> None:
    result = Ship().execute({"fail_after": True})

    assert not result.success
    assert result.error.step == "write_shipment"
    [key] = ledger.done
    assert ledger.undone == [key]
    assert entry(key).state == ROLLED_BACK
    assert Group.objects.count() == 0
    assert result.step("book_label").status == "compensated"


def test_a_failed_compensation_is_rollback_incomplete_until_recovery_succeeds() -> None:
    ledger.undo_failures = 3
    result = Ship().execute({"fail_after": True})

    [key] = ledger.done
    assert result.step("book_label").compensation == "failed"
    record = entry(key)
    assert (record.state, record.attempts) == (ROLLBACK_INCOMPLETE, 1)
    # Not before its backoff: an attempt a moment later changes nothing.
    assert recover_effects().failed == 0
    assert recover_effects(now=timezone.now() + LATER).failed == 1
    assert recover_effects(now=timezone.now() + 2 * LATER).failed == 1
    record = entry(key)
    assert (record.state, record.attempts) == (ROLLBACK_INCOMPLETE, 3)
    assert "did not answer" in record.last_error
    assert record.lease_until > timezone.now() + timedelta(seconds=100)  # backoff grows

    report = recover_effects(now=timezone.now() + 3 * LATER)

    assert report.compensated == 1
    assert entry(key).state == COMPENSATED
    assert ledger.undone == [key]


@pytest.mark.skipif(
    connection.vendor == "sqlite",
    reason="SQLite has one writer: the intent is written in the run's transaction and a "
    "crash rolls it back with the run; the crash guarantee needs PostgreSQL.",
)
def test_the_intent_outlives_a_run_that_dies_and_recovery_undoes_it() -> None:
    with pytest.raises(Killed):
        Ship().execute({"crash": True})

    [key] = ledger.done
    assert Group.objects.count() == 0  # the run's transaction never committed
    assert entry(key).state == PENDING
    # Within its lease the run may still be alive: recovery leaves it alone.
    assert recover_effects().compensated == 0
    assert ledger.undone == []

    report = recover_effects(now=timezone.now() + LATER)

    assert (report.compensated, report.failed) == (1, 0)
    assert entry(key).state == COMPENSATED
    assert ledger.undone == [key]
    # Another pass finds nothing left to do.
    assert recover_effects(now=timezone.now() + LATER).compensated == 0


@pytest.mark.skipif(connection.vendor == "sqlite", reason="needs a run that dies (PostgreSQL)")
def test_a_retry_of_a_dead_request_reuses_its_key_or_is_refused(django_user_model: Any) -> None:
    user = django_user_model.objects.create_user("carol")
    with pytest.raises(Killed):
        Ship().execute({"crash": True}, user=user, idempotency_key="lost")
    [key] = ledger.done

    in_flight = Ship().execute({}, user=user, idempotency_key="lost")
    assert in_flight.error.code == "effect_in_progress"

    EffectRecord.objects.filter(key=key).update(lease_until=timezone.now() - LATER)
    taken_over = Ship().execute({}, user=user, idempotency_key="lost")

    # The same key reached the external system (which answers with what it did),
    # the entry is settled and recovery has nothing to undo.
    assert taken_over.success
    assert taken_over.data == [key]
    assert entry(key).state == SETTLED
    assert recover_effects(now=timezone.now() + LATER).compensated == 0
    assert ledger.undone == []
    replay = Ship().execute({}, user=user, idempotency_key="lost")
    assert replay.error.code == "effect_already_settled"


@pytest.mark.skipif(connection.vendor == "sqlite", reason="needs a run that dies (PostgreSQL)")
def test_a_retry_after_recovery_is_refused_and_does_nothing(django_user_model: Any) -> None:
    user = django_user_model.objects.create_user("dave")
    with pytest.raises(Killed):
        Ship().execute({"crash": True}, user=user, idempotency_key="gone")
    recover_effects(now=timezone.now() + LATER)

    retry = Ship().execute({}, user=user, idempotency_key="gone")

    assert (retry.error.status, retry.error.code) == (409, "request_rolled_back")
    assert sum(ledger.done.values()) == 1


def test_a_run_that_outlived_its_lease_does_not_commit() -> None:
    def recovery_takes_over(ctx: ShipContext) -> ShipContext:
        # What recover_effects does to an entry whose lease expired.
        EffectRecord.objects.filter(key=ctx.keys[0]).update(owner="recovery")
        return ctx

    class SlowShip(Ship):
        pipeline: ClassVar = (*Ship.pipeline, Step("slow", recovery_takes_over))

    result = SlowShip().execute({})

    assert not result.success
    assert (result.error.step, result.error.code) == ("transaction", "effect_lease_lost")
    assert Group.objects.count() == 0


def test_journaled_steps_are_declared_where_they_can_be_undone() -> None:
    with pytest.raises(DefinitionError, match="after commit"):
        type(
            "Late",
            (Ship,),
            {
                "pipeline": (
                    Step("late", book_label, critical=False, after_commit=True, recover=print),
                )
            },
        )
    with pytest.raises(DefinitionError, match="recover must be callable"):
        Step("bad", book_label, recover="cancel")  # type: ignore[arg-type]


def test_effect_key_outside_a_journaled_step_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="journaled step"):
        ShipContext().effect_key()


def test_rollback_incomplete_shows_in_the_metrics_the_admin_and_the_command(
    admin_client: Any,
) -> None:
    ledger.undo_failures = 100
    Ship().execute({"fail_after": True})
    [key] = ledger.done

    exposition = JOURNAL_REGISTRY.collect()
    samples = {
        (family.name, sample.labels["step"]): sample.value
        for family in exposition
        for sample in family.samples
    }
    assert samples == {("orchestrator_effects_rollback_incomplete", "book_label"): 1}
    assert (
        b'orchestrator_effects_rollback_incomplete{orchestrator="ship",step="book_label"} 1.0'
        in (admin_client.get("/metrics").content)
    )
    page = admin_client.get("/admin/orchestration/effectrecord/?state=rollback_incomplete")
    assert page.status_code == 200
    assert key.encode() in page.content
    assert b"Rollback incomplete" in page.content

    EffectRecord.objects.filter(key=key).update(lease_until=timezone.now() - LATER)
    out = call_command_output("recover_effects")
    assert out == "compensated 0, failed 1, skipped 0\n"
    assert entry(key).attempts == 2


def test_purge_keeps_what_is_not_settled() -> None:
    ledger.undo_failures = 100
    done = Ship().execute({}).data[0]
    failing = Ship().execute({"fail_after": True}).data
    assert failing is None
    EffectRecord.objects.update(created=timezone.now() - timedelta(days=30))

    assert purge_effects(older_than=timedelta(days=7), dry_run=True) == 1
    assert purge_effects(older_than=timedelta(days=7)) == 1

    assert not EffectRecord.objects.filter(key=done).exists()
    assert EffectRecord.objects.get().state == ROLLBACK_INCOMPLETE


def call_command_output(*args: str) -> str:
    from io import StringIO

    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_the_generated_rules_alert_on_a_rollback_that_stays_incomplete(tmp_path: Any) -> None:
    import shutil
    import subprocess

    import yaml

    from orchestration.dashboards.provisioning import rule_groups

    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package prometheus; make system-deps).")
    groups = rule_groups()
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": groups}))
    [rule] = [
        rule
        for group in groups
        for rule in group["rules"]
        if rule.get("alert") == "OrchestratorRollbackIncomplete"
    ]
    rendered = {
        name: text.replace("{{ $labels.orchestrator }}", "ship")
        .replace("{{ $labels.step }}", "book_label")
        .replace("{{ $value }}", "1")
        for name, text in rule["annotations"].items()
    }
    labels = 'job="app", instance="a", orchestrator="ship", step="book_label"'
    (tmp_path / "test.yml").write_text(
        yaml.safe_dump(
            {
                "rule_files": ["rules.yml"],
                "evaluation_interval": "1m",
                "tests": [
                    {
                        "interval": "1m",
                        "input_series": [
                            {
                                "series": f"orchestrator_effects_rollback_incomplete{{{labels}}}",
                                "values": "0 1x20",
                            },
                        ],
                        "alert_rule_test": [
                            {"eval_time": "5m", "alertname": "OrchestratorRollbackIncomplete"},
                            {
                                "eval_time": "15m",
                                "alertname": "OrchestratorRollbackIncomplete",
                                "exp_alerts": [
                                    {
                                        "exp_labels": {
                                            "severity": "critical",
                                            "job": "app",
                                            "orchestrator": "ship",
                                            "step": "book_label",
                                        },
                                        "exp_annotations": rendered,
                                    }
                                ],
                            },
                        ],
                    }
                ],
            }
        )
    )
    checked = subprocess.run(
        [promtool, "test", "rules", "test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the LIKE index is PostgreSQL's (varchar_pattern_ops)"
)
def test_a_claim_writes_one_index_entry_for_its_key():
    """The key is unique by a constraint: no second index for LIKE queries nobody sends."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = %s AND indexdef LIKE %s",
            [EffectRecord._meta.db_table, "%(key%"],
        )
        indexes = [row[0] for row in cursor.fetchall()]
    assert len(indexes) == 1, indexes
    assert "UNIQUE" in indexes[0]


# -- the journal's rules under a failing database (see orchestration/journal.py) -----------


def _fail_once(monkeypatch: Any, name: str) -> None:
    """The journal's ``name`` write fails once, as it does while the database restarts."""
    from django.db import OperationalError

    from orchestration import journal

    real = getattr(journal, name)
    calls = {"n": 0}

    def failing(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OperationalError("the connection is lost")
        return real(*args, **kwargs)

    monkeypatch.setattr(journal, name, failing)


@pytest.mark.skipif(connection.vendor == "sqlite", reason="needs the journal's own connection")
def test_an_undo_that_cannot_be_marked_does_not_happen_and_a_retry_gets_the_live_effect(
    django_user_model: Any, monkeypatch: Any
) -> None:
    """Rule 2: a pending entry's effect was never undone, so reusing its key is safe."""
    user = django_user_model.objects.create_user("erin")
    _fail_once(monkeypatch, "begin_compensation")

    failed = Ship().execute({"fail_after": True}, user=user, idempotency_key="k1")

    assert not failed.success
    [key] = ledger.done
    assert ledger.undone == []  # nothing undone without the mark
    assert entry(key).state == PENDING
    EffectRecord.objects.filter(key=key).update(lease_until=timezone.now() - LATER)

    retry = Ship().execute({}, user=user, idempotency_key="k1")

    assert retry.success, retry.error
    assert retry.data == [key]  # the live effect, under its own key
    assert entry(key).state == SETTLED
    assert ledger.undone == []
    assert recover_effects(now=timezone.now() + LATER).compensated == 0


def test_an_undo_not_recorded_as_done_is_never_reused_and_recovery_runs_it_again(
    django_user_model: Any, monkeypatch: Any
) -> None:
    """Rules 2 and 3: the paid-with-a-refunded-charge case. The run undid its effect
    but could not record it; the retry must not get that effect back."""
    user = django_user_model.objects.create_user("frank")
    _fail_once(monkeypatch, "record_compensation")

    failed = Ship().execute({"fail_after": True}, user=user, idempotency_key="k2")

    assert not failed.success
    [key] = ledger.done
    assert ledger.undone == [key]
    assert entry(key).state == "compensating"

    in_lease = Ship().execute({}, user=user, idempotency_key="k2")
    assert (in_lease.error.status, in_lease.error.code) == (409, "request_rolled_back")
    EffectRecord.objects.filter(key=key).update(lease_until=timezone.now() - LATER)
    after_lease = Ship().execute({}, user=user, idempotency_key="k2")
    assert (after_lease.error.status, after_lease.error.code) == (409, "request_rolled_back")
    assert ledger.done == {key: 1}  # the undone key never reached the system again

    report = recover_effects()
    assert (report.compensated, report.failed) == (1, 0)
    assert entry(key).state == COMPENSATED


@pytest.mark.skipif(connection.vendor == "sqlite", reason="needs a run that dies (PostgreSQL)")
def test_recovery_marks_an_entry_before_it_undoes_it() -> None:
    """Rule 2 for recovery: an undo interrupted mid-way leaves a compensating entry."""
    with pytest.raises(Killed):
        Ship().execute({"crash": True})
    [key] = ledger.done

    seen: list[str] = []

    def dies_while_undoing(undoing: str) -> None:
        seen.append(EffectRecord.objects.get(key=undoing).state)
        ledger.before_undo = None
        raise Killed

    ledger.before_undo = dies_while_undoing
    with pytest.raises(Killed):
        recover_effects(now=timezone.now() + LATER)
    assert seen == ["compensating"]
    assert entry(key).state == "compensating"
    report = recover_effects(now=timezone.now() + 2 * LATER)
    assert report.compensated == 1
    assert ledger.undone == [key]


def _commit_then_lose_the_connection(monkeypatch: Any, *, commits: bool) -> None:
    """The next COMMIT's answer is lost with the connection; ``commits``: the server
    committed before that (else it rolled back)."""
    from django.db import OperationalError, connections

    default = connections["default"]
    wrapper = type(default)
    real_commit, real_rollback = wrapper._commit, wrapper._rollback
    armed = {"on": True}

    def commit(self: Any) -> None:
        if not armed["on"] or self is not default:
            return real_commit(self)
        armed["on"] = False
        (real_commit if commits else real_rollback)(self)
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(wrapper, "_commit", commit)


def test_a_commit_with_a_lost_answer_that_went_through_is_kept(monkeypatch: Any) -> None:
    """Rule 4: the journal says the run committed; nothing is undone."""
    _commit_then_lose_the_connection(monkeypatch, commits=True)

    result = Ship().execute({})

    assert result.success, result.error
    [key] = result.data
    assert entry(key).state == SETTLED
    assert Group.objects.count() == 1
    assert ledger.undone == []


def test_a_commit_with_a_lost_answer_that_did_not_go_through_is_undone(
    monkeypatch: Any,
) -> None:
    _commit_then_lose_the_connection(monkeypatch, commits=False)

    result = Ship().execute({})

    assert not result.success
    assert result.error.step == "transaction"
    assert Group.objects.count() == 0
    [key] = ledger.done
    assert ledger.undone == [key]
    assert entry(key).state == ROLLED_BACK
