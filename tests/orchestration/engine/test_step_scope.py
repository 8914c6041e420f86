"""Savepoints and statement budgets open at a step's first query (``orchestration.scope``)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext

from orchestration import Retry, ServiceUnavailable, Step
from tests.orchestration.pipelines import GroupsContext, create_group, groups, make_orchestrator

pytestmark = pytest.mark.django_db(transaction=True)


def statements(queries: CaptureQueriesContext, prefix: str) -> list[str]:
    return [query["sql"] for query in queries.captured_queries if prefix in query["sql"]]


def call_out(ctx: GroupsContext) -> GroupsContext:
    """A step that talks to another system, not to the database."""
    ctx.trail.append("called")
    return ctx


def failing_call(ctx: GroupsContext) -> GroupsContext:
    raise ServiceUnavailable("the other system is down")


def test_steps_that_send_no_query_send_no_savepoint():
    orchestrator = make_orchestrator(
        "OffTheDatabase",
        [
            Step("write", create_group("a")),
            Step("retried", call_out, retry=Retry(attempts=2, backoff=0)),
            Step("noted", failing_call, critical=False),
            Step("best_effort", call_out, critical=False),
        ],
    )

    with CaptureQueriesContext(connection) as queries:
        result = orchestrator().execute([])

    assert result.success, result.error
    assert statements(queries, "SAVEPOINT") == []
    assert [warning.step for warning in result.warnings] == ["noted"]
    assert groups() == ["a"]


def test_a_step_that_writes_gets_its_savepoint_at_the_first_query_and_keeps_its_writes():
    orchestrator = make_orchestrator(
        "WritesLate",
        [Step("first", create_group("a")), Step("noted", create_group("b"), critical=False)],
    )

    with CaptureQueriesContext(connection) as queries:
        result = orchestrator().execute([])

    assert result.success
    sql = [query["sql"] for query in queries.captured_queries]
    savepoint = next(i for i, text in enumerate(sql) if text.startswith("SAVEPOINT"))
    assert sql[savepoint + 1].startswith("INSERT")  # opened just before the step's insert
    assert len(statements(queries, "RELEASE SAVEPOINT")) == 1
    assert groups() == ["a", "b"]


def test_each_failed_attempt_of_a_retried_step_undoes_its_own_writes():
    attempts = []

    def flaky_write(ctx: GroupsContext) -> GroupsContext:
        attempts.append(1)
        Group.objects.create(name=f"attempt-{len(attempts)}")
        if len(attempts) < 3:
            raise ServiceUnavailable("try again")
        return ctx

    orchestrator = make_orchestrator(
        "Flaky", [Step("flaky", flaky_write, retry=Retry(attempts=3, backoff=0))]
    )

    result = orchestrator().execute([])

    assert result.success
    assert result.step("flaky").attempts == 3
    assert groups() == ["attempt-3"]


def test_a_failed_step_that_sent_no_query_loses_its_on_commit_callbacks():
    ran = []

    def promise_then_fail(ctx: GroupsContext) -> GroupsContext:
        transaction.on_commit(lambda: ran.append("before-query"))
        raise ServiceUnavailable("down")

    orchestrator = make_orchestrator(
        "Promises",
        [Step("first", create_group("a")), Step("promise", promise_then_fail, critical=False)],
    )

    result = orchestrator().execute([])

    assert result.success
    assert ran == []
    assert groups() == ["a"]


def test_a_failed_step_loses_callbacks_registered_before_and_after_its_first_query():
    ran = []

    def promise_write_fail(ctx: GroupsContext) -> GroupsContext:
        transaction.on_commit(lambda: ran.append("before-query"))
        Group.objects.create(name="undone")
        transaction.on_commit(lambda: ran.append("after-query"))
        raise ServiceUnavailable("down")

    def promise_and_succeed(ctx: GroupsContext) -> GroupsContext:
        transaction.on_commit(lambda: ran.append("kept"))
        return ctx

    orchestrator = make_orchestrator(
        "MorePromises",
        [
            Step("kept", promise_and_succeed, critical=False),
            Step("promise", promise_write_fail, critical=False),
        ],
    )

    result = orchestrator().execute([])

    assert result.success
    assert ran == ["kept"]
    assert groups() == []


def test_without_a_run_transaction_a_failed_best_effort_step_still_undoes_its_writes():
    def write_then_fail(ctx: GroupsContext) -> GroupsContext:
        Group.objects.create(name="undone")
        raise ServiceUnavailable("down")

    orchestrator = make_orchestrator(
        "NoRunTransaction",
        [
            Step("first", create_group("a")),
            Step("noted", write_then_fail, critical=False),
            Step("last", create_group("c")),
        ],
        atomic=False,
    )

    result = orchestrator().execute([])

    assert result.success
    assert groups() == ["a", "c"]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="statement_timeout is PostgreSQL's")
def test_the_statement_budget_is_set_only_for_steps_that_query_and_is_restored_after():
    seen: dict[str, str] = {}

    def read_timeout(label: str):
        def operation(ctx: GroupsContext) -> GroupsContext:
            with connection.cursor() as cursor:
                cursor.execute("SELECT current_setting('statement_timeout')")
                seen[label] = cursor.fetchone()[0]
            return ctx

        operation.__name__ = f"read_{label}"
        return operation

    orchestrator = make_orchestrator(
        "Budgets",
        [
            Step("before", read_timeout("before")),
            Step("quick_call", call_out, timeout=5),
            Step("budgeted", read_timeout("budgeted"), timeout=2),
            Step("after", read_timeout("after")),
        ],
    )

    with CaptureQueriesContext(connection) as queries:
        result = orchestrator().execute([])

    assert result.success, result.error
    setters = [q for q in queries.captured_queries if "set_config('statement_timeout'" in q["sql"]]
    assert len(setters) == 2  # set before the budgeted step's query, restored after it
    assert seen["before"] == seen["after"]
    assert seen["budgeted"].endswith("ms")
    assert 0 < int(seen["budgeted"].removesuffix("ms")) <= 2000


def test_where_the_database_has_no_savepoints_a_step_gets_none(monkeypatch):
    # What Django asks before it creates one (SQLite answers from its own rule, not
    # from features.uses_savepoints).
    monkeypatch.setattr(connections["default"], "_savepoint_allowed", lambda: False)
    orchestrator = make_orchestrator(
        "NoSavepointsHere",
        [Step("first", create_group("a")), Step("noted", create_group("b"), critical=False)],
    )

    with CaptureQueriesContext(connection) as queries:
        result = orchestrator().execute([])

    assert result.success, result.error
    assert statements(queries, "SAVEPOINT") == []
    # The run's transaction ended (committed): no stray entry left Django's savepoint
    # stack looking as if the run's own block were nested in another.
    assert not connection.in_atomic_block
    assert connection.savepoint_ids == []
    assert groups() == ["a", "b"]
