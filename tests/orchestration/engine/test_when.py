"""Conditional steps."""

from __future__ import annotations

import pytest

from orchestration import Step
from tests.orchestration.pipelines import create_group, groups, make_orchestrator


@pytest.mark.django_db
def test_a_false_condition_skips_the_step():
    orchestrator = make_orchestrator(
        "Conditional",
        [
            Step("wanted", create_group("a"), when=lambda ctx: "a" in ctx.names),
            Step("unwanted", create_group("b"), when=lambda ctx: "b" in ctx.names),
        ],
    )

    result = orchestrator().execute(["a"])

    assert result.success
    assert result.step("wanted").status == "ok"
    assert result.step("unwanted").status == "skipped"
    assert result.step("unwanted").attempts == 0
    assert "unwanted" not in result.metrics
    assert groups() == ["a"]
