"""Steps: latency per step, failures by kind, retries, compensations and skips.

The builders for one orchestrator take its scope split by ``step`` and the
names of the steps the panel is about; a panel about no step is left out
(``None``).
"""

from __future__ import annotations

from collections.abc import Sequence

from grafana_foundation_sdk.builders.timeseries import Panel as TimeseriesPanel

from orchestration.dashboards.promql import (
    BEST_EFFORT,
    COMPENSATIONS,
    CRITICAL,
    RUNS,
    STEP_FAILURES,
    STEP_RETRIES,
    STEP_SECONDS,
    STEP_SKIPPED,
    Scope,
    one_of,
    quantile,
    ratio,
    zero_filled,
)
from orchestration.dashboards.widgets import Query, timeseries

STEP_RUNS = f"{STEP_SECONDS}_count"


def _named(steps: Scope, names: Sequence[str]) -> Scope:
    return steps.where(f'step=~"{one_of(names)}"')


def mean_latency(steps: Scope) -> TimeseriesPanel:
    return timeseries(
        "Step latency (mean)",
        "Mean wall time of each step, retries and backoff included.",
        "s",
        [Query(ratio(steps.rate(f"{STEP_SECONDS}_sum"), steps.rate(STEP_RUNS)), steps.legend())],
    )


def p95_latency(steps: Scope) -> TimeseriesPanel:
    buckets = steps.rate(f"{STEP_SECONDS}_bucket", "le")
    return timeseries(
        "Step latency (p95)",
        "95th percentile of each step's wall time.",
        "s",
        [Query(quantile(0.95, buckets, steps.rate(STEP_RUNS)), steps.legend())],
    )


def failures(steps: Scope, names: Sequence[str], *, critical: bool) -> TimeseriesPanel | None:
    if not names:
        return None
    if critical:
        title, meaning = "Critical step failures", "each one fails the run. Steps: "
    else:
        title, meaning = "Best-effort step failures", "the run goes on with a warning. Steps: "
    kind = "critical" if critical else "best-effort"
    failed = steps.where(CRITICAL if critical else BEST_EFFORT).rate(STEP_FAILURES)
    return timeseries(
        title,
        f"Failures per second of {kind} steps; {meaning}{', '.join(names)}.",
        "reqps",
        [Query(zero_filled(failed, _named(steps, names).rate(STEP_RUNS)), steps.legend())],
    )


def retries(steps: Scope, names: Sequence[str]) -> TimeseriesPanel | None:
    if not names:
        return None
    return timeseries(
        "Retries",
        "Retries per second (attempts after the first) of steps with a retry policy.",
        "reqps",
        [Query(_named(steps, names).rate(STEP_RETRIES), steps.legend())],
    )


def compensations(steps: Scope, names: Sequence[str]) -> TimeseriesPanel | None:
    if not names:
        return None
    named = _named(steps, names)
    return timeseries(
        "Compensations",
        "Compensations per second after a critical failure; a failed one needs a person.",
        "reqps",
        [
            Query(
                zero_filled(
                    named.where(f'outcome="{outcome}"').rate(COMPENSATIONS), named.rate(STEP_RUNS)
                ),
                f"{steps.legend()} {outcome}",
            )
            for outcome in ("ok", "failed")
        ],
    )


def skipped(steps: Scope, names: Sequence[str]) -> TimeseriesPanel | None:
    if not names:
        return None
    return timeseries(
        "Skipped steps",
        "Steps skipped per second because their condition was false.",
        "reqps",
        [Query(_named(steps, names).rate(STEP_SKIPPED), steps.legend())],
    )


def failures_by_kind(runs: Scope) -> TimeseriesPanel:
    """Critical and best-effort failures side by side, per series of ``runs``."""
    return timeseries(
        "Step failures",
        f"Step failures per second, by {', '.join(runs.by)}: critical ones fail the run, "
        "best-effort ones become warnings.",
        "reqps",
        [
            Query(
                zero_filled(runs.where(flag).rate(STEP_FAILURES), runs.rate(RUNS)),
                f"{runs.legend()} {kind}",
            )
            for flag, kind in ((CRITICAL, "critical"), (BEST_EFFORT, "best effort"))
        ],
    )


def retries_and_compensations(runs: Scope) -> TimeseriesPanel:
    return timeseries(
        "Retries and compensations",
        f"Step retries and compensations per second, by {', '.join(runs.by)}.",
        "reqps",
        [
            Query(runs.rate(STEP_RETRIES), f"{runs.legend()} retries"),
            Query(
                zero_filled(runs.rate(COMPENSATIONS), runs.rate(RUNS)),
                f"{runs.legend()} compensations",
            ),
        ],
    )
