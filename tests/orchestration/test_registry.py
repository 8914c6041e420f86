"""Metric names and the registry of orchestrators."""

from __future__ import annotations

import pytest

from orchestration import BaseOrchestrator, DefinitionError, Retry, Step, registry
from orchestration.steps import default_metric_name
from tests.orchestration.pipelines import GroupsOrchestrator, create_group


@pytest.mark.parametrize(
    ("class_name", "metric_name"),
    [
        ("CreateOrderOrchestrator", "create_order"),
        ("CancelOrder", "cancel_order"),
        ("HTTPSyncOrchestrator", "http_sync"),
        ("Orchestrator", "orchestrator"),
    ],
)
def test_the_metric_name_defaults_to_the_class_name_in_snake_case(class_name, metric_name):
    assert default_metric_name(class_name) == metric_name


def test_every_concrete_orchestrator_is_registered_with_its_steps():
    class RegisteredPipeline(GroupsOrchestrator):
        metric_name = "registered_for_test"
        pipeline = [
            Step("a", create_group("a"), retry=Retry(attempts=2)),
            Step("b", create_group("b"), critical=False, after_commit=True, timeout=1.5),
        ]

    described = registry.describe(RegisteredPipeline)

    assert RegisteredPipeline in registry.registered()
    assert described["name"] == "registered_for_test"
    assert [(s["name"], s["critical"], s["after_commit"]) for s in described["steps"]] == [
        ("a", True, False),
        ("b", False, True),
    ]
    assert described["steps"][0]["retry"] == {"attempts": 2, "on": ["ServiceUnavailable"]}
    assert described["steps"][1]["timeout"] == 1.5
    assert GroupsOrchestrator not in registry.registered()


def test_two_classes_cannot_share_a_metric_name():
    class Original(GroupsOrchestrator):
        metric_name = "shared_metric_name"
        pipeline = [Step("a", create_group("a"))]

    with pytest.raises(DefinitionError, match="already used by"):
        type(
            "Impostor",
            (BaseOrchestrator,),
            {
                "metric_name": "shared_metric_name",
                "pipeline": [Step("a", create_group("a"))],
                "__module__": "somewhere.else",
            },
        )
