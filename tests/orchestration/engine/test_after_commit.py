"""Steps deferred until the transaction commits."""

from __future__ import annotations

import pytest
from django.db import connection, transaction

from orchestration import Conflict, ServiceUnavailable, Step
from tests.orchestration.pipelines import (
    GroupsContext,
    create_group,
    fail_with,
    groups,
    make_orchestrator,
)


@pytest.mark.django_db(transaction=True)
def test_after_commit_steps_run_after_the_commit_and_are_timed_before_execute_returns():
    seen: dict[str, object] = {}

    def notify(ctx: GroupsContext) -> GroupsContext:
        # Best effort, so it runs in a transaction of its own: the run's has ended.
        seen["transactions"] = len(connection.atomic_blocks)
        seen["committed"] = groups()
        ctx.trail.append("notified")
        return ctx

    orchestrator = make_orchestrator(
        "AfterCommit",
        [
            Step("notify", notify, critical=False, after_commit=True),
            Step("create", create_group("a")),
        ],
    )

    result = orchestrator().execute([])

    assert seen == {"transactions": 1, "committed": ["a"]}
    assert [record.name for record in result.steps] == ["create", "notify"]
    assert result.step("notify").status == "ok"
    assert "notify" in result.metrics
    assert result.data == ["a", "notified"]


@pytest.mark.django_db(transaction=True)
def test_after_commit_steps_never_run_when_the_run_fails():
    calls: list[str] = []
    orchestrator = make_orchestrator(
        "NoNotifyOnFailure",
        [
            Step("notify", lambda ctx: calls.append("x") or ctx, critical=False, after_commit=True),
            Step("fails", fail_with(Conflict())),
        ],
    )

    result = orchestrator().execute([])

    assert not result.success
    assert calls == []
    assert "notify" not in [record.name for record in result.steps]


@pytest.mark.django_db(transaction=True)
def test_after_commit_steps_wait_for_an_outer_transaction():
    calls: list[int] = []
    orchestrator = make_orchestrator(
        "Deferred",
        [
            Step("create", create_group("a")),
            Step(
                "notify",
                lambda ctx: calls.append(len(connection.atomic_blocks)) or ctx,
                critical=False,
                after_commit=True,
            ),
        ],
    )

    with transaction.atomic():
        result = orchestrator().execute([])
        assert result.step("notify").status == "deferred"
        assert calls == []

    assert calls == [1]
    assert result.step("notify").status == "ok"


@pytest.mark.django_db(transaction=True)
def test_a_failing_after_commit_step_is_a_warning():
    orchestrator = make_orchestrator(
        "EmailDown",
        [
            Step("create", create_group("a")),
            Step("email", fail_with(ServiceUnavailable("smtp")), critical=False, after_commit=True),
        ],
    )

    result = orchestrator().execute([])

    assert result.success
    assert [(w.step, w.message) for w in result.warnings] == [("email", "smtp")]
    assert groups() == ["a"]
