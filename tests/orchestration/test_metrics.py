"""Prometheus metrics, read back from the client's registry (not from our objects)."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from orchestration import Conflict, Retry, ServiceUnavailable, Step
from orchestration.metrics import BUCKETS
from tests.orchestration.pipelines import create_group, fail_with, make_orchestrator


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Delta:
    """Differences of samples between construction and ``__call__``."""

    def __init__(self, *queries: tuple[str, dict[str, str]]) -> None:
        self.queries = queries
        self.before = [sample(name, **labels) for name, labels in queries]

    def __call__(self) -> list[float]:
        return [
            sample(name, **labels) - before
            for (name, labels), before in zip(self.queries, self.before, strict=True)
        ]


class Failing:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.__name__ = self.__qualname__ = "failing"

    def __call__(self, ctx):
        if self.failures:
            self.failures -= 1
            raise ServiceUnavailable()
        return ctx


@pytest.mark.django_db
def test_a_successful_run_observes_its_duration_and_each_step():
    orchestrator = make_orchestrator(
        "MetricsOk",
        [Step("a", create_group("a")), Step("skip", create_group("s"), when=lambda ctx: False)],
    )
    name = orchestrator.metric_name
    delta = Delta(
        ("orchestrator_duration_seconds_count", {"orchestrator": name, "outcome": "success"}),
        ("orchestrator_duration_seconds_count", {"orchestrator": name, "outcome": "failure"}),
        (
            "orchestrator_step_duration_seconds_count",
            {"orchestrator": name, "step": "a", "outcome": "ok"},
        ),
        ("orchestrator_step_skipped_total", {"orchestrator": name, "step": "skip"}),
        (
            "orchestrator_step_duration_seconds_count",
            {"orchestrator": name, "step": "skip", "outcome": "ok"},
        ),
    )

    orchestrator().execute([])

    assert delta() == [1, 0, 1, 1, 0]


@pytest.mark.django_db
def test_each_failure_is_counted_once_with_its_code_and_criticality():
    flaky = Failing(failures=5)
    orchestrator = make_orchestrator(
        "MetricsFailures",
        [
            Step("optional", fail_with(ServiceUnavailable()), critical=False),
            Step("charge", flaky, retry=Retry(attempts=3, backoff=0)),
        ],
    )
    name = orchestrator.metric_name
    delta = Delta(
        (
            "orchestrator_step_failures_total",
            {
                "orchestrator": name,
                "step": "optional",
                "critical": "false",
                "code": "service_unavailable",
            },
        ),
        (
            "orchestrator_step_failures_total",
            {
                "orchestrator": name,
                "step": "charge",
                "critical": "true",
                "code": "service_unavailable",
            },
        ),
        ("orchestrator_step_retries_total", {"orchestrator": name, "step": "charge"}),
        (
            "orchestrator_step_duration_seconds_count",
            {"orchestrator": name, "step": "charge", "outcome": "failed"},
        ),
        ("orchestrator_duration_seconds_count", {"orchestrator": name, "outcome": "failure"}),
    )

    orchestrator().execute([])

    assert delta() == [1, 1, 2, 1, 1]


@pytest.mark.django_db
def test_timeouts_and_compensations_are_counted():
    import time

    def slow(ctx):
        time.sleep(0.02)
        return ctx

    def broken_refund(ctx):
        raise RuntimeError("refund failed")

    orchestrator = make_orchestrator(
        "MetricsCompensations",
        [
            Step("reserve", create_group("a"), compensate=lambda ctx: None),
            Step("charge", create_group("b"), compensate=broken_refund),
            Step("slow", slow, timeout=0.001),
        ],
    )
    name = orchestrator.metric_name
    delta = Delta(
        (
            "orchestrator_compensations_total",
            {"orchestrator": name, "step": "reserve", "outcome": "ok"},
        ),
        (
            "orchestrator_compensations_total",
            {"orchestrator": name, "step": "charge", "outcome": "failed"},
        ),
        (
            "orchestrator_step_duration_seconds_count",
            {"orchestrator": name, "step": "slow", "outcome": "timed_out"},
        ),
        (
            "orchestrator_step_failures_total",
            {"orchestrator": name, "step": "slow", "critical": "true", "code": "timeout"},
        ),
    )

    orchestrator().execute([])

    assert delta() == [1, 1, 1, 1]


@pytest.mark.django_db
def test_the_in_progress_gauge_counts_running_orchestrators():
    seen: list[float] = []

    def look(ctx):
        seen.append(sample("orchestrator_in_progress", orchestrator="metrics_gauge"))
        return ctx

    orchestrator = make_orchestrator(
        "MetricsGauge", [Step("look", look), Step("fail", fail_with(Conflict()))]
    )

    orchestrator().execute([])

    assert seen == [1.0]
    assert sample("orchestrator_in_progress", orchestrator="metrics_gauge") == 0.0


@pytest.mark.django_db
def test_metrics_can_be_turned_off(settings):
    settings.ORCHESTRATION = {"METRICS": False}
    orchestrator = make_orchestrator("MetricsOff", [Step("a", create_group("a"))])
    delta = Delta(
        (
            "orchestrator_duration_seconds_count",
            {"orchestrator": "metrics_off", "outcome": "success"},
        ),
    )

    result = orchestrator().execute([])

    assert result.success
    assert "a" in result.metrics
    assert delta() == [0]


def test_buckets_resolve_sub_millisecond_steps():
    assert BUCKETS[0] <= 0.0001
    assert list(BUCKETS) == sorted(BUCKETS)


@pytest.mark.django_db
def test_error_codes_that_would_grow_the_label_set_are_folded_into_other():
    from orchestration.metrics import MAX_CODES_PER_STEP

    runs = iter(range(10_000))

    def fail_with_a_new_code(ctx):
        raise ServiceUnavailable(code=f"upstream_{next(runs)}")

    distinct = make_orchestrator(
        "MetricsCodes", [Step("flaky", fail_with_a_new_code, critical=False)]
    )
    malformed = make_orchestrator(
        "MetricsBadCode",
        [Step("flaky", fail_with(ServiceUnavailable(code="Not A Code!")), critical=False)],
    )

    def failures(orchestrator: str, code: str) -> float:
        labels = {"orchestrator": orchestrator, "step": "flaky", "critical": "false"}
        return sample("orchestrator_step_failures_total", **labels, code=code)

    other_before = failures("metrics_codes", "other")
    for _ in range(MAX_CODES_PER_STEP + 5):
        distinct().execute([])
    malformed().execute([])

    counted = [failures("metrics_codes", f"upstream_{n}") for n in range(MAX_CODES_PER_STEP + 5)]
    assert counted == [1.0] * MAX_CODES_PER_STEP + [0.0] * 5
    assert failures("metrics_codes", "other") - other_before == 5
    assert failures("metrics_bad_code", "Not A Code!") == 0
    assert failures("metrics_bad_code", "other") >= 1


def test_the_engines_writes_expose_what_the_clients_observe_would():
    from prometheus_client import CollectorRegistry, Histogram, generate_latest

    from orchestration import metrics

    def exposition(write) -> list[str]:
        registry = CollectorRegistry()
        histogram = Histogram("same_seconds", "h", ["step"], buckets=BUCKETS, registry=registry)
        child, other = histogram.labels("a"), histogram.labels("b")
        values = [0.0, 0.0001, 0.00011, 0.0005, 0.003, 0.75, 2.5, 29.9, 30.0, 45.0, 1e-9]
        write(child, other, values)
        return [
            line
            for line in generate_latest(registry).decode().splitlines()
            if not line.startswith("same_seconds_created")
        ]

    def through_client(child, other, values):
        for value in values:
            child.observe(value)
        other.observe(0.2)

    def through_engine(child, other, values):
        metrics.observe(child, values[0])
        metrics.end_run([(child, value) for value in values[1:]], other, 0.2)

    assert metrics.DIRECT  # the test suite runs in a single process
    assert exposition(through_engine) == exposition(through_client)
