"""make_context and run_step: one operation under test, the engine's rules applied."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from orchestration import Retry, ServiceUnavailable, Step, registry
from orchestration.testing import TEST_REQUEST_ID, isolated_registry, make_context, run_step
from tests.orchestration.pipelines import (
    GroupsContext,
    GroupsOrchestrator,
    create_group,
    fail_with,
    groups,
)


def test_make_context_fills_test_defaults():
    ctx = make_context(GroupsContext, names=["a"])

    assert ctx.request_id == TEST_REQUEST_ID
    assert ctx.user is None
    assert ctx.names == ["a"]
    assert ctx.errors == []
    assert ctx.results == {}
    assert ctx.metadata == {}


@pytest.mark.django_db
def test_run_step_runs_a_bare_operation_and_returns_the_new_context():
    outcome = run_step(create_group("solo"), make_context(GroupsContext))

    assert outcome.ok
    assert outcome.ctx.trail == ["solo"]
    assert outcome.record.attempts == 1
    assert groups() == ["solo"]


@pytest.mark.django_db
def test_run_step_translates_failures_like_the_engine():
    outcome = run_step(
        fail_with(ServiceUnavailable("down"), after_writing="partial"),
        make_context(GroupsContext),
        name="notify",
        critical=False,
    )

    assert not outcome.ok
    assert (outcome.error.step, outcome.error.code) == ("notify", "service_unavailable")
    assert [e.code for e in outcome.ctx.errors] == ["service_unavailable"]
    assert not Group.objects.filter(name="partial").exists()


@pytest.mark.django_db
def test_run_step_applies_a_steps_retry_policy():
    calls = []

    def flaky(ctx):
        calls.append(1)
        if len(calls) < 2:
            raise ServiceUnavailable()
        return ctx

    outcome = run_step(
        Step("charge", flaky, retry=Retry(attempts=3, backoff=0)), make_context(GroupsContext)
    )

    assert outcome.ok
    assert outcome.record.attempts == 2


def test_run_step_refuses_options_with_a_ready_step():
    with pytest.raises(TypeError, match="bare operation"):
        run_step(Step("a", create_group("a")), make_context(GroupsContext), critical=False)


def test_an_isolated_registry_forgets_the_classes_defined_inside_it():
    before = registry.registered()

    with isolated_registry():

        class Temporary(GroupsOrchestrator):
            pipeline = [Step("one", create_group("one"))]

        assert Temporary in registry.registered()
        assert set(before) <= set(registry.registered())

    assert registry.registered() == before
