"""Critical failures, transactions and savepoints."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from orchestration import Conflict, NotFound, PaymentRequired, ServiceUnavailable, Step
from tests.orchestration.pipelines import create_group, fail_with, groups, make_orchestrator


def count_savepoints(queries: CaptureQueriesContext) -> int:
    return sum(1 for query in queries.captured_queries if query["sql"].startswith("SAVEPOINT"))


@pytest.mark.django_db(transaction=True)
def test_a_critical_failure_rolls_back_every_write_of_the_run():
    orchestrator = make_orchestrator(
        "RollsBack",
        [
            Step("first", create_group("a")),
            Step("noted", create_group("b"), critical=False),
            Step("charge", fail_with(PaymentRequired("card declined"), after_writing="c")),
            Step("never", create_group("d")),
        ],
    )

    result = orchestrator().execute([])

    assert not result.success
    assert result.data is None
    assert result.error.step == "charge"
    assert result.error.code == "payment_declined"
    assert result.error.status == 402
    assert result.error.message == "card declined"
    assert [record.name for record in result.steps] == ["first", "noted", "charge"]
    assert result.step("charge").status == "failed"
    assert groups() == []


@pytest.mark.django_db(transaction=True)
def test_atomic_false_keeps_the_writes_of_completed_steps():
    orchestrator = make_orchestrator(
        "NotAtomic",
        [Step("first", create_group("a")), Step("fails", fail_with(Conflict()))],
        atomic=False,
    )

    result = orchestrator().execute([])

    assert not result.success
    assert groups() == ["a"]


@pytest.mark.django_db(transaction=True)
def test_a_failed_best_effort_step_undoes_only_its_own_writes():
    orchestrator = make_orchestrator(
        "BestEffort",
        [
            Step("first", create_group("a")),
            Step(
                "analytics",
                fail_with(ServiceUnavailable("down"), after_writing="b"),
                critical=False,
            ),
            Step("last", create_group("c")),
        ],
    )

    result = orchestrator().execute([])

    assert result.success
    assert groups() == ["a", "c"]
    assert [(w.step, w.code) for w in result.warnings] == [("analytics", "service_unavailable")]
    assert result.step("analytics").status == "failed"


@pytest.mark.django_db(transaction=True)
def test_a_database_error_in_a_best_effort_step_leaves_the_transaction_usable():
    # On PostgreSQL a failed statement aborts the whole transaction unless it
    # ran inside a savepoint; the engine gives best-effort steps one.
    orchestrator = make_orchestrator(
        "DuplicateRow",
        [
            Step("first", create_group("a")),
            Step("duplicate", create_group("a"), critical=False),
            Step("last", create_group("c")),
        ],
    )

    result = orchestrator().execute([])

    assert result.success
    assert groups() == ["a", "c"]
    assert result.warnings[0].code == "internal_error"


@pytest.mark.django_db(transaction=True)
def test_critical_steps_without_retry_pay_for_no_savepoint():
    critical_only = make_orchestrator(
        "NoSavepoints", [Step(f"s{i}", create_group(f"g{i}")) for i in range(3)]
    )
    with_best_effort = make_orchestrator(
        "OneSavepoint",
        [Step("a", create_group("x")), Step("b", create_group("y"), critical=False)],
    )

    with CaptureQueriesContext(connection) as plain:
        critical_only().execute([])
    with CaptureQueriesContext(connection) as mixed:
        with_best_effort().execute([])

    assert count_savepoints(plain) == 0
    assert count_savepoints(mixed) == 1


@pytest.mark.django_db(transaction=True)
def test_an_orchestrator_inside_an_outer_transaction_is_rolled_back_to_its_savepoint():
    orchestrator = make_orchestrator(
        "Nested", [Step("first", create_group("inner")), Step("fails", fail_with(NotFound()))]
    )

    with transaction.atomic():
        Group.objects.create(name="outer")
        result = orchestrator().execute([])

    assert result.error.status == 404
    assert groups() == ["outer"]
