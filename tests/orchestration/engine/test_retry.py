"""Retry policies."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from orchestration import PaymentRequired, Retry, ServiceUnavailable, Step
from tests.orchestration.pipelines import GroupsContext, groups, make_orchestrator


class Flaky:
    """Fails with ``exc`` the first ``failures`` calls, writing a row each time."""

    def __init__(self, failures: int, exc: Exception) -> None:
        self.failures = failures
        self.exc = exc
        self.calls = 0
        self.__name__ = self.__qualname__ = "flaky"

    def __call__(self, ctx: GroupsContext) -> GroupsContext:
        self.calls += 1
        Group.objects.create(name=f"attempt-{self.calls}")
        if self.calls <= self.failures:
            raise self.exc
        return ctx


@pytest.mark.django_db(transaction=True)
def test_retry_reruns_listed_exceptions_and_undoes_each_failed_attempt():
    flaky = Flaky(2, ServiceUnavailable("gateway timeout"))
    orchestrator = make_orchestrator(
        "Retries", [Step("charge", flaky, retry=Retry(attempts=3, backoff=0))]
    )

    result = orchestrator().execute([])

    assert result.success
    assert flaky.calls == 3
    assert result.step("charge").attempts == 3
    assert groups() == ["attempt-3"]


@pytest.mark.django_db(transaction=True)
def test_retry_gives_up_after_its_attempts():
    flaky = Flaky(5, ServiceUnavailable())
    orchestrator = make_orchestrator(
        "GivesUp", [Step("charge", flaky, retry=Retry(attempts=2, backoff=0))]
    )

    result = orchestrator().execute([])

    assert result.error.code == "service_unavailable"
    assert result.step("charge").attempts == 2
    assert flaky.calls == 2
    assert groups() == []


@pytest.mark.django_db
def test_retry_does_not_rerun_exceptions_it_does_not_list():
    flaky = Flaky(1, PaymentRequired())
    orchestrator = make_orchestrator(
        "NoRetryOnDecline", [Step("charge", flaky, retry=Retry(attempts=5, backoff=0))]
    )

    result = orchestrator().execute([])

    assert result.error.code == "payment_declined"
    assert flaky.calls == 1
    assert result.step("charge").attempts == 1


def test_retry_backoff_grows_exponentially_up_to_its_cap_with_jitter():
    policy = Retry(attempts=10, backoff=0.1, max_backoff=0.5)

    delays = [policy.delay(n) for n in range(1, 6)]

    assert 0.05 <= delays[0] <= 0.1
    assert 0.1 <= delays[1] <= 0.2
    assert 0.2 <= delays[2] <= 0.4
    assert all(0.25 <= d <= 0.5 for d in delays[3:])
