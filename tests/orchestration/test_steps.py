"""Steps and pipelines: rejected when malformed, as the class is defined; flags in words."""

from __future__ import annotations

import pytest

from orchestration import DefinitionError, Retry, ServiceUnavailable, Step, registry
from orchestration.steps import flag_words
from tests.orchestration.pipelines import GroupsOrchestrator, create_group


def test_duplicate_step_names_are_rejected_when_the_class_is_defined():
    with pytest.raises(DefinitionError, match=r"Twice.*'charge' is used twice"):

        class Twice(GroupsOrchestrator):
            pipeline = [Step("charge", create_group("a")), Step("charge", create_group("b"))]


def test_a_critical_after_commit_step_is_rejected_when_the_class_is_defined():
    with pytest.raises(DefinitionError, match=r"CriticalEmail.*'email'.*cannot be critical"):

        class CriticalEmail(GroupsOrchestrator):
            pipeline = [Step("email", create_group("a"), after_commit=True)]


def test_an_empty_pipeline_is_rejected_when_the_class_is_defined():
    with pytest.raises(DefinitionError, match=r"Empty: the pipeline has no steps"):

        class Empty(GroupsOrchestrator):
            pipeline = []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "Bad Name"}, "lower_snake_case"),
        ({"name": "ok", "timeout": 0}, "timeout must be a positive number"),
        ({"name": "ok", "retry": 3}, "retry must be a Retry instance"),
        ({"name": "ok", "when": True}, "when must be callable"),
    ],
)
def test_malformed_steps_are_rejected(kwargs, message):
    with pytest.raises(DefinitionError, match=message):
        Step(operation=create_group("a"), **kwargs)


def test_retry_policies_are_checked():
    with pytest.raises(DefinitionError, match="at least 1"):
        Retry(attempts=0)
    with pytest.raises(DefinitionError, match="exception classes"):
        Retry(on=("ServiceUnavailable",))


def test_a_computed_pipeline_is_validated_and_used():
    class Computed(GroupsOrchestrator):
        @classmethod
        def get_pipeline(cls):
            return [Step("one", create_group("one"))]

    assert [step["name"] for step in registry.describe(Computed)["steps"]] == ["one"]


def test_a_steps_flags_read_the_same_everywhere():
    def refund(ctx):
        return ctx

    step = Step(
        "charge",
        create_group("a"),
        retry=Retry(attempts=3, on=(ServiceUnavailable, TimeoutError)),
        compensate=refund,
        when=lambda ctx: True,
        timeout=0.5,
    )

    assert flag_words(step.describe()) == [
        "critical",
        "conditional",
        "retried up to 3 attempts on ServiceUnavailable, TimeoutError",
        "compensated on later failure",
        "0.5 s budget",
    ]
    mail = Step("mail", create_group("b"), critical=False, after_commit=True)
    assert flag_words(mail.describe()) == ["best effort", "after commit"]
