"""Compensations after a critical failure."""

from __future__ import annotations

import pytest

from orchestration import ServiceUnavailable, Step
from tests.orchestration.pipelines import create_group, fail_with, groups, make_orchestrator


@pytest.mark.django_db(transaction=True)
def test_compensations_run_in_reverse_order_for_completed_steps_and_survive_failures():
    undone: list[str] = []

    def undo(name: str):
        return lambda ctx: undone.append(name)

    def broken_undo(ctx):
        undone.append("broken")
        raise RuntimeError("refund API down")

    orchestrator = make_orchestrator(
        "Compensates",
        [
            Step("reserve", create_group("a"), compensate=undo("reserve")),
            Step("plain", create_group("b")),
            Step("charge", create_group("c"), compensate=broken_undo),
            Step("notify", create_group("d"), critical=False, compensate=undo("notify")),
            Step("ship", fail_with(ServiceUnavailable())),
            Step("never", create_group("e"), compensate=undo("never")),
        ],
    )

    result = orchestrator().execute([])

    assert not result.success
    assert undone == ["notify", "broken", "reserve"]
    assert result.step("reserve").status == "compensated"
    assert result.step("notify").status == "compensated"
    assert result.step("plain").status == "ok"
    charge = result.step("charge")
    assert (charge.status, charge.compensation) == ("ok", "failed")
    assert charge.compensation_error == "RuntimeError: refund API down"
    assert groups() == []


@pytest.mark.django_db
def test_nothing_is_compensated_on_success():
    undone: list[str] = []
    orchestrator = make_orchestrator(
        "NoCompensation", [Step("a", create_group("a"), compensate=lambda ctx: undone.append("a"))]
    )

    assert orchestrator().execute([]).success
    assert undone == []
