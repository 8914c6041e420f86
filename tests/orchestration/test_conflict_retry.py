"""A run whose transaction the database aborted for a concurrent one is run again,
while nothing outside the database has happened yet; otherwise it is a 409."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from django.contrib.auth.models import Group
from django.db import OperationalError, transaction

from orchestration import BaseOrchestrator, OperationContext, Step


def deadlock() -> OperationalError:
    error = OperationalError("deadlock detected")
    error.__cause__ = psycopg.errors.DeadlockDetected("deadlock detected")
    return error


class Script:
    """How many times each step ran, and the first runs of ``write`` that deadlock."""

    def __init__(self, deadlocks: int) -> None:
        self.deadlocks = deadlocks
        self.runs: dict[str, int] = {}
        self.contexts = 0

    def count(self, name: str) -> None:
        self.runs[name] = self.runs.get(name, 0) + 1

    def charge(self, ctx: OperationContext) -> OperationContext:
        self.count("charge")
        return ctx

    def refund(self, ctx: OperationContext) -> None:
        self.count("refund")

    def write(self, ctx: OperationContext) -> OperationContext:
        self.count("write")
        Group.objects.create(name=f"run {self.runs['write']}")
        if self.runs["write"] <= self.deadlocks:
            raise deadlock()
        return ctx


def orchestrator(script: Script, *, charge_first: bool) -> BaseOrchestrator[Any, Any, Any]:
    steps = [Step("write", script.write)]
    if charge_first:
        steps.insert(0, Step("charge", script.charge, compensate=script.refund))

    class Scripted(BaseOrchestrator[OperationContext, str, None]):
        pipeline = tuple(steps)

        def initialize_context(self, input: None, **kwargs: Any) -> OperationContext:
            script.contexts += 1
            return OperationContext(**kwargs)

        def build_result(self, ctx: OperationContext) -> str:
            return "done"

    return Scripted()


@pytest.mark.django_db(transaction=True)
def test_a_deadlock_before_any_external_effect_is_run_again() -> None:
    script = Script(deadlocks=2)
    result = orchestrator(script, charge_first=False).execute(None)

    assert result.success, result.error
    assert script.contexts == 3  # each run starts from a new context
    assert list(Group.objects.values_list("name", flat=True)) == ["run 3"]


@pytest.mark.django_db(transaction=True)
def test_a_deadlock_that_keeps_happening_is_a_409_after_the_attempts() -> None:
    script = Script(deadlocks=99)
    runner = orchestrator(script, charge_first=False)
    result = runner.execute(None)

    assert result.error is not None
    assert (result.error.status, result.error.code) == (409, "transaction_conflict")
    assert script.runs["write"] == runner.conflict_attempts
    assert not Group.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_deadlock_after_an_external_effect_is_compensated_and_not_run_again() -> None:
    script = Script(deadlocks=1)
    result = orchestrator(script, charge_first=True).execute(None)

    assert result.error is not None
    assert (result.error.status, result.error.code) == (409, "transaction_conflict")
    assert script.runs == {"charge": 1, "write": 1, "refund": 1}
    assert not Group.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_deadlock_in_a_transaction_the_run_does_not_own_is_not_run_again() -> None:
    script = Script(deadlocks=1)
    with transaction.atomic():
        result = orchestrator(script, charge_first=False).execute(None)

    assert result.error is not None
    assert result.error.code == "transaction_conflict"
    assert script.runs == {"write": 1}
