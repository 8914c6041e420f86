"""What a step's exception becomes in the result."""

from __future__ import annotations

import logging

import pytest
from django.contrib.auth.models import Group

from orchestration import Step, ValidationFailed
from tests.orchestration.pipelines import (
    GroupsContext,
    GroupsOrchestrator,
    create_group,
    fail_with,
    groups,
    make_orchestrator,
)


@pytest.mark.django_db
def test_an_unexpected_exception_is_an_internal_error_without_internals(caplog):
    orchestrator = make_orchestrator(
        "Crashes", [Step("crash", fail_with(KeyError("secret_column")))]
    )

    with caplog.at_level(logging.ERROR, logger="orchestration"):
        result = orchestrator().execute([], request_id="req-crash-0001")

    assert result.error.code == "internal_error"
    assert result.error.status == 500
    assert "secret_column" not in result.error.message
    assert "req-crash-0001" in result.error.message
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.request_id == "req-crash-0001"
    assert record.exc_info[0] is KeyError


@pytest.mark.django_db
def test_django_errors_map_to_their_typed_twins():
    from django.core.exceptions import ValidationError

    def missing(ctx):
        return Group.objects.get(name="nope")

    def invalid(ctx):
        raise ValidationError({"quantity": ["Must be positive."]})

    not_found = make_orchestrator("Missing", [Step("load", missing)])().execute([])
    bad = make_orchestrator("Invalid", [Step("check", invalid)])().execute([])

    assert (not_found.error.code, not_found.error.status) == ("not_found", 404)
    assert (bad.error.code, bad.error.status) == ("validation_failed", 400)
    assert bad.error.details == {"quantity": ["Must be positive."]}


@pytest.mark.django_db
def test_typed_errors_keep_code_message_and_details():
    error = ValidationFailed("Bad items.", details={"items": ["Empty."]})
    result = make_orchestrator("Typed", [Step("validate", fail_with(error))])().execute([])

    assert result.error.as_dict() == {
        "step": "validate",
        "code": "validation_failed",
        "message": "Bad items.",
        "details": {"items": ["Empty."]},
    }


@pytest.mark.django_db
def test_an_operation_returning_something_else_fails_its_step_naming_it():
    orchestrator = make_orchestrator(
        "BadReturn", [Step("forgets_return", lambda ctx: None), Step("after", create_group("a"))]
    )

    result = orchestrator().execute([])

    assert not result.success
    assert result.error.step == "forgets_return"
    assert result.error.code == "invalid_return"
    assert "'forgets_return'" in result.error.message
    assert "NoneType" in result.error.message
    assert groups() == []


@pytest.mark.django_db
def test_an_operation_may_return_a_replaced_copy_of_the_context():
    import dataclasses

    def rename(ctx: GroupsContext) -> GroupsContext:
        return dataclasses.replace(ctx, trail=[*ctx.trail, "copied"])

    result = make_orchestrator("Copies", [Step("rename", rename)])().execute([])

    assert result.data == ["copied"]


def test_execute_raises_for_programming_errors():
    class ReturnsNoContext(GroupsOrchestrator):
        pipeline = [Step("noop", lambda ctx: ctx)]

        def initialize_context(self, input, **kwargs):
            return {"not": "a context"}

    with pytest.raises(TypeError, match="initialize_context"):
        ReturnsNoContext().execute([])
