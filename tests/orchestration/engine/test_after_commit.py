"""Steps queued in the run's transaction and run by a task worker after the commit.

The outbox itself (claims, leases, relay, backends) is tested in
``tests/orchestration/test_outbox.py``; here, what the engine promises.
"""

from __future__ import annotations

import pytest
from django.db import connection, transaction

from orchestration import Conflict, ServiceUnavailable, Step, registry
from orchestration.testing import run_queued_steps
from tests.orchestration.pipelines import (
    GroupsContext,
    GroupsOrchestrator,
    create_group,
    fail_with,
    groups,
    make_orchestrator,
)


def make_registered(name: str, steps: list[Step]) -> type[GroupsOrchestrator]:
    """As ``make_orchestrator``, but registered (for this test only): a worker finds
    the pipeline of a queued step in the registry."""
    orchestrator = make_orchestrator(name, steps)
    registry.register(orchestrator)
    return orchestrator


@pytest.mark.django_db(transaction=True)
def test_after_commit_steps_are_queued_then_run_by_a_worker_on_committed_data():
    seen: dict[str, object] = {}

    def notify(ctx: GroupsContext) -> GroupsContext:
        # In the worker: no transaction is held across the step's I/O.
        seen["transactions"] = len(connection.atomic_blocks)
        seen["committed"] = groups()
        return ctx

    orchestrator = make_registered(
        "AfterCommit",
        [
            Step("notify", notify, critical=False, after_commit=True),
            Step("create", create_group("a")),
        ],
    )

    result = orchestrator().execute([])

    assert [record.name for record in result.steps] == ["create", "notify"]
    assert result.step("notify").status == "queued"
    assert "notify" not in result.metrics
    assert seen == {}
    assert run_queued_steps() == {"notify": "ok"}
    assert seen == {"transactions": 0, "committed": ["a"]}


@pytest.mark.django_db(transaction=True)
def test_after_commit_steps_never_run_when_the_run_fails():
    calls: list[str] = []
    orchestrator = make_registered(
        "NoNotifyOnFailure",
        [
            Step("notify", lambda ctx: calls.append("x") or ctx, critical=False, after_commit=True),
            Step("fails", fail_with(Conflict())),
        ],
    )

    result = orchestrator().execute([])

    assert not result.success
    assert "notify" not in [record.name for record in result.steps]
    assert run_queued_steps() == {}
    assert calls == []


@pytest.mark.django_db(transaction=True)
def test_after_commit_steps_go_with_an_outer_transaction():
    calls: list[str] = []

    def pipeline(name: str) -> list[Step]:
        return [
            Step("create", create_group(name)),
            Step(
                "notify", lambda ctx: calls.append(name) or ctx, critical=False, after_commit=True
            ),
        ]

    kept, dropped = (
        make_registered("Kept", pipeline("a")),
        make_registered("Dropped", pipeline("b")),
    )

    with transaction.atomic():
        rolled_back = dropped().execute([])
        transaction.set_rollback(True)
    with transaction.atomic():
        committed = kept().execute([])

    assert rolled_back.queued == committed.queued == ["notify"]
    assert run_queued_steps() == {"notify": "ok"}  # only the committed run's
    assert calls == ["a"]


@pytest.mark.django_db(transaction=True)
def test_a_failing_after_commit_step_fails_in_the_worker_not_in_the_response():
    orchestrator = make_registered(
        "EmailDown",
        [
            Step("create", create_group("a")),
            Step("email", fail_with(ServiceUnavailable("smtp")), critical=False, after_commit=True),
        ],
    )

    result = orchestrator().execute([])

    assert result.success
    assert result.warnings == []
    assert groups() == ["a"]
    assert run_queued_steps() == {"email": "requeued"}  # a 503: delivered again later
