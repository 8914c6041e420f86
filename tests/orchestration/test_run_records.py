"""Run records: kept outside the run's transaction, failures always, successes sampled."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.core.checks import run_checks
from django.core.management import call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from orchestration import (
    BaseOrchestrator,
    OperationContext,
    PaymentRequired,
    Retry,
    ServiceUnavailable,
    Step,
)
from orchestration.models import RunRecord
from orchestration.runs import ASYNCHRONOUS_COMMIT, purge_run_records


@dataclass(kw_only=True, eq=False)
class ParcelContext(OperationContext):
    fail_at: str = ""
    flaky_attempts: int = 0
    refunds: list[str] = field(default_factory=list)


def write_group(name: str):
    def operation(ctx: ParcelContext) -> ParcelContext:
        Group.objects.create(name=f"{name}-{ctx.request_id}")
        if ctx.fail_at == name:
            raise PaymentRequired("Declined.", code="card_declined")
        return ctx

    operation.__name__ = f"write_{name}"
    return operation


def flaky(ctx: ParcelContext) -> ParcelContext:
    if ctx.flaky_attempts:
        ctx.flaky_attempts -= 1
        raise ServiceUnavailable()
    return ctx


def refund(ctx: ParcelContext) -> None:
    ctx.refunds.append("refunded")


def failing_notify(ctx: ParcelContext) -> ParcelContext:
    raise ServiceUnavailable("The mail server is down.", code="email_unavailable")


@pytest.fixture
def parcel() -> type[BaseOrchestrator[ParcelContext, str, dict[str, Any]]]:
    """A pipeline of a domain app (defined per test: the registry forgets it after)."""

    class Parcel(BaseOrchestrator[ParcelContext, str, dict[str, Any]]):
        __module__ = "parcels.orchestrators"
        metric_name = "record_parcel"
        pipeline = (
            Step("first", write_group("first")),
            Step("charge", flaky, retry=Retry(attempts=3, backoff=0), compensate=refund),
            Step("second", write_group("second")),
            Step("third", write_group("third")),
            # Best effort in the run (an after-commit step would run later, in a worker).
            Step("notify", failing_notify, critical=False),
        )

        def initialize_context(self, input: dict[str, Any], **kwargs: Any) -> ParcelContext:
            return ParcelContext(**input, **kwargs)

        def build_result(self, ctx: ParcelContext) -> str:
            return "shipped"

    return Parcel


@pytest.fixture
def record_every_success(settings: Any) -> None:
    settings.ORCHESTRATION = {**settings.ORCHESTRATION, "RUN_RECORD_SAMPLE_RATE": 1.0}


def records_of(result: Any) -> list[RunRecord]:
    return list(RunRecord.objects.filter(request_id=result.request_id))


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_failure_leaves_its_record(parcel, django_user_model):
    user = django_user_model.objects.create_user("rita")

    result = parcel().execute({"fail_at": "second", "flaky_attempts": 1}, user=user)

    assert not result.success
    assert not Group.objects.exists()  # every write of the run was rolled back...
    [record] = records_of(result)  # ...but not its record
    assert record.orchestrator == "record_parcel"
    assert record.outcome == "failure"
    assert (record.failing_step, record.error_code) == ("second", "card_declined")
    assert record.error_message == "Declined."
    assert record.user_id == user.pk
    assert record.sample_rate == 1.0
    statuses = {step["name"]: (step["status"], step["attempts"]) for step in record.steps}
    assert statuses == {
        "first": ("ok", 1),
        "charge": ("compensated", 2),
        "second": ("failed", 1),
        "third": ("not_run", 0),
        "notify": ("not_run", 0),
    }
    assert record.steps[2]["error_code"] == "card_declined"
    assert record.steps[2]["duration_ms"] > 0
    assert record.compensations == [{"step": "charge", "outcome": "ok", "error": None}]


@pytest.mark.django_db(transaction=True)
def test_a_failure_costs_one_insert_whatever_the_number_of_steps(parcel):
    with CaptureQueriesContext(connection) as captured:
        result = parcel().execute({"fail_at": "third"})

    inserts = [q["sql"] for q in captured if "orchestration_runrecord" in q["sql"]]
    assert len(inserts) == 1
    assert inserts[0].removeprefix(ASYNCHRONOUS_COMMIT).upper().startswith("INSERT")
    assert len(records_of(result)) == 1


@pytest.mark.skipif(connection.vendor != "postgresql", reason="synchronous_commit is PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_on_postgresql_a_record_does_not_wait_for_the_disk_and_changes_nothing_else(
    parcel, settings
):
    with CaptureQueriesContext(connection) as captured:
        result = parcel().execute({"fail_at": "third"})

    [insert] = [q["sql"] for q in captured if "orchestration_runrecord" in q["sql"]]
    assert insert.startswith(ASYNCHRONOUS_COMMIT)
    assert len(records_of(result)) == 1
    with connection.cursor() as cursor:  # SET LOCAL ended with the INSERT's transaction
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "on"

    # The journal waits for the disk (its default); a record, which decides nothing, does not.
    assert settings.ORCHESTRATION.get("JOURNAL_SYNCHRONOUS_COMMIT", True) is True
    with CaptureQueriesContext(connection) as captured:
        parcel().execute({"fail_at": "third"})
    [insert] = [q["sql"] for q in captured if "orchestration_runrecord" in q["sql"]]
    assert insert.startswith(ASYNCHRONOUS_COMMIT)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="server_side_binding is PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_with_server_side_binding_a_record_is_a_plain_insert(parcel, monkeypatch):
    """Server-side binding cannot take two statements in one execute: no prefix then."""
    options = {**connection.settings_dict["OPTIONS"], "server_side_binding": True}
    monkeypatch.setitem(connection.settings_dict, "OPTIONS", options)
    with CaptureQueriesContext(connection) as captured:
        result = parcel().execute({"fail_at": "third"})

    [insert] = [q["sql"] for q in captured if "orchestration_runrecord" in q["sql"]]
    assert insert.upper().startswith("INSERT")
    assert len(records_of(result)) == 1


@pytest.mark.django_db(transaction=True)
def test_a_sampled_success_keeps_warnings_and_its_sample_rate(parcel, record_every_success):
    result = parcel().execute({})

    assert result.success
    [record] = records_of(result)
    assert record.outcome == "success"
    assert record.failing_step == record.error_code == ""
    assert [step["status"] for step in record.steps] == ["ok", "ok", "ok", "ok", "failed"]
    assert record.warnings == [
        {
            "step": "notify",
            "code": "email_unavailable",
            "message": "The mail server is down.",
            "details": {},
        }
    ]


@pytest.mark.django_db(transaction=True)
def test_successes_are_sampled_and_failures_always_kept(parcel, settings):
    settings.ORCHESTRATION = {**settings.ORCHESTRATION, "RUN_RECORD_SAMPLE_RATE": 0.25}

    for _ in range(200):
        parcel().execute({})
    for _ in range(5):
        parcel().execute({"fail_at": "first"})

    successes = RunRecord.objects.filter(orchestrator="record_parcel", outcome="success")
    # Binomial(200, 0.25): mean 50, sd 6.1; outside 20..80 once in about a million runs.
    assert 20 <= successes.count() <= 80
    assert set(successes.values_list("sample_rate", flat=True)) == {0.25}
    assert RunRecord.objects.filter(orchestrator="record_parcel", outcome="failure").count() == 5


@pytest.mark.django_db(transaction=True)
def test_no_success_is_kept_at_rate_zero_and_nothing_when_recording_is_off(parcel, settings):
    settings.ORCHESTRATION = {**settings.ORCHESTRATION, "RUN_RECORD_SAMPLE_RATE": 0.0}
    parcel().execute({})
    assert not RunRecord.objects.filter(orchestrator="record_parcel").exists()

    settings.ORCHESTRATION = {**settings.ORCHESTRATION, "RUN_RECORDS": False}
    parcel().execute({"fail_at": "first"})
    assert not RunRecord.objects.filter(orchestrator="record_parcel").exists()


@pytest.mark.django_db(transaction=True)
def test_inside_a_callers_transaction_that_rolls_back(parcel):
    results = []

    def give_up_after_the_run() -> None:
        with transaction.atomic():
            results.append(parcel().execute({"fail_at": "second"}))
            raise RuntimeError("the caller gives up")

    with pytest.raises(RuntimeError):
        give_up_after_the_run()
    [result] = results

    if connection.vendor == "postgresql":
        # Written on a connection of its own, committed at once.
        assert [record.failing_step for record in records_of(result)] == ["second"]
    else:
        # SQLite: a second connection would wait for the caller's write lock, so the
        # record waits for the caller's commit, which never came.
        assert records_of(result) == []


@pytest.mark.django_db(transaction=True)
def test_inside_a_callers_transaction_that_commits(parcel):
    with transaction.atomic():
        result = parcel().execute({"fail_at": "second"})

    assert [record.error_code for record in records_of(result)] == ["card_declined"]


@pytest.mark.django_db(transaction=True)
def test_purge_keeps_the_retention_window(parcel, settings):
    settings.ORCHESTRATION = {**settings.ORCHESTRATION, "RUN_RECORD_RETENTION_DAYS": 30}
    old = parcel().execute({"fail_at": "first"})
    recent = parcel().execute({"fail_at": "first"})
    RunRecord.objects.filter(request_id=old.request_id).update(
        created=timezone.now() - timedelta(days=31)
    )

    out = io.StringIO()
    call_command("purge_run_records", "--dry-run", stdout=out)
    assert out.getvalue().strip() == "Would delete 1 run record(s) older than 30 day(s)."
    assert RunRecord.objects.count() == 2

    assert purge_run_records() == 1
    assert records_of(old) == []
    assert len(records_of(recent)) == 1

    call_command("purge_run_records", "--days", "1", stdout=io.StringIO())
    assert len(records_of(recent)) == 1


def test_settings_out_of_range_are_check_errors(settings):
    settings.ORCHESTRATION = {"RUN_RECORD_SAMPLE_RATE": 1.5, "RUN_RECORD_RETENTION_DAYS": 0}

    messages = {
        m.id: m.msg for m in run_checks() if m.id in ("orchestration.E008", "orchestration.E005")
    }

    assert messages == {
        "orchestration.E008": "ORCHESTRATION['RUN_RECORD_SAMPLE_RATE'] must be between 0 and 1, "
        "not 1.5.",
        "orchestration.E005": "ORCHESTRATION['RUN_RECORD_RETENTION_DAYS'] must be at least 1, "
        "not 0.",
    }
    settings.ORCHESTRATION = {"RUN_RECORD_SAMPLE_RATE": 1.0, "RUN_RECORD_RETENTION_DAYS": 1}
    assert not [m for m in run_checks() if m.id in ("orchestration.E008", "orchestration.E005")]


@pytest.mark.django_db(transaction=True)
def test_in_a_request_the_record_is_written_once_the_response_is_sent(parcel):
    from django.http import HttpResponse
    from django.test import RequestFactory

    from orchestration.middleware import TimingMiddleware

    def view(request):
        result = parcel().execute({"fail_at": "second"})
        return HttpResponse(status=result.status_code)

    response = TimingMiddleware(view)(RequestFactory().post("/parcels/"))

    assert response.status_code == 402
    assert not RunRecord.objects.exists()  # not while the client waits for the response
    response.close()  # what the server does once the response is sent
    [record] = RunRecord.objects.all()
    assert (record.outcome, record.failing_step) == ("failure", "second")
    assert record.request_id == response["X-Request-ID"]
