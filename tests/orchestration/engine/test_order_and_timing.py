"""Steps run in order; the result, timings and request id."""

from __future__ import annotations

import time

import pytest

from orchestration import Step
from tests.orchestration.pipelines import (
    GroupsContext,
    create_group,
    fail_with,
    groups,
    make_orchestrator,
)


@pytest.mark.django_db
def test_steps_run_in_declared_order_and_the_result_is_built_from_the_context():
    orchestrator = make_orchestrator(
        "InOrder", [Step("first", create_group("a")), Step("second", create_group("b"))]
    )

    result = orchestrator().execute([])

    assert result.success
    assert result.data == ["a", "b"]
    assert [record.name for record in result.steps] == ["first", "second"]
    assert all(record.status == "ok" and record.attempts == 1 for record in result.steps)
    assert result.error is None
    assert groups() == ["a", "b"]


@pytest.mark.django_db
def test_timings_are_float_milliseconds_for_every_step_that_ran():
    def sleepy(ctx: GroupsContext) -> GroupsContext:
        time.sleep(0.002)
        return ctx

    orchestrator = make_orchestrator(
        "Timed",
        [
            Step("sleepy", sleepy),
            Step("skipped", sleepy, when=lambda ctx: False),
            Step("broken", fail_with(ValueError("x")), critical=False),
        ],
    )

    result = orchestrator().execute([])

    assert set(result.metrics) == {"sleepy", "broken"}
    assert all(isinstance(ms, float) for ms in result.metrics.values())
    assert result.metrics["sleepy"] >= 2.0
    assert result.duration_ms >= result.metrics["sleepy"]
    assert result.step("skipped").duration_ms == 0.0


@pytest.mark.django_db
def test_the_request_id_is_passed_through_or_generated():
    orchestrator = make_orchestrator("Ids", [Step("noop", lambda ctx: ctx)])

    given = orchestrator().execute([], request_id="req-12345678")
    generated = orchestrator().execute([])

    assert given.request_id == "req-12345678"
    assert len(generated.request_id) == 32
