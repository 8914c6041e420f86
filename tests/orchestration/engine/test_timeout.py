"""Step budgets."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth.models import Group

from orchestration import Step
from tests.orchestration.pipelines import GroupsContext, create_group, groups, make_orchestrator


@pytest.mark.django_db(transaction=True)
def test_a_step_that_returns_past_its_budget_times_out_and_its_writes_are_undone():
    budgets: list[float | None] = []

    def slow(ctx: GroupsContext) -> GroupsContext:
        budgets.append(ctx.remaining())
        Group.objects.create(name="slow")
        time.sleep(0.06)
        budgets.append(ctx.remaining())
        return ctx

    orchestrator = make_orchestrator(
        "Slow",
        [
            Step("first", create_group("a")),
            Step("slow", slow, critical=False, timeout=0.05),
            Step("last", create_group("c")),
        ],
    )

    result = orchestrator().execute([])

    assert result.success
    assert result.step("slow").status == "timed_out"
    assert result.warnings[0].code == "timeout"
    assert 0 < budgets[0] <= 0.05
    assert budgets[1] == 0.0
    assert groups() == ["a", "c"]


@pytest.mark.django_db
def test_remaining_is_none_without_a_timeout_and_a_critical_timeout_fails_the_run():
    budgets: list[float | None] = []

    def record(ctx):
        budgets.append(ctx.remaining())
        return ctx

    def slow(ctx):
        time.sleep(0.03)
        return ctx

    orchestrator = make_orchestrator(
        "CriticalSlow", [Step("record", record), Step("slow", slow, timeout=0.01)]
    )

    result = orchestrator().execute([])

    assert budgets == [None]
    assert (result.error.step, result.error.code) == ("slow", "timeout")
