"""Runs: throughput, failure ratio, latency and runs in progress."""

from __future__ import annotations

from collections.abc import Sequence

from grafana_foundation_sdk.builders.stat import Panel as StatPanel
from grafana_foundation_sdk.builders.timeseries import Panel as TimeseriesPanel

from orchestration.dashboards.promql import (
    BEST_EFFORT,
    CRITICAL,
    FAILED,
    IN_PROGRESS,
    RUN_SECONDS,
    RUNS,
    STEP_FAILURES,
    Scope,
    or_zero,
    quantile,
    ratio,
)
from orchestration.dashboards.widgets import Query, stat, timeseries


def failure_ratio(scope: Scope) -> str:
    return ratio(scope.where(FAILED).rate(RUNS), scope.rate(RUNS))


def run_quantile(q: float, scope: Scope) -> str:
    return quantile(q, scope.rate(f"{RUN_SECONDS}_bucket", "le"), scope.rate(RUNS))


def runs_stat(scope: Scope, description: str) -> StatPanel:
    return stat("Runs", description, "reqps", scope.rate(RUNS))


def failure_ratio_stat(scope: Scope, description: str) -> StatPanel:
    return stat("Failure ratio", description, "percentunit", failure_ratio(scope))


def latency_stat(scope: Scope) -> StatPanel:
    return stat(
        "Latency p95", "95th percentile of the run's wall time.", "s", run_quantile(0.95, scope)
    )


def in_progress_stat(scope: Scope) -> StatPanel:
    return stat(
        "In progress", "Runs executing now, over every worker.", "short", scope.sum(IN_PROGRESS)
    )


def step_failures_stat(scope: Scope, *, critical: bool) -> StatPanel:
    if critical:
        title, meaning = (
            "Critical step failures",
            "Critical step failures per second; each one fails its run.",
        )
    else:
        title, meaning = (
            "Warnings",
            "Best-effort step failures per second: the run succeeded with a warning.",
        )
    flag = CRITICAL if critical else BEST_EFFORT
    return stat(title, meaning, "reqps", scope.where(flag).rate(STEP_FAILURES))


def runs(scope: Scope, title: str, *, width: int = 12) -> TimeseriesPanel:
    """Runs per second, one series per value of the scope's split label."""
    by = " and ".join(scope.by)
    return timeseries(
        title,
        f"Runs per second, by {by}.",
        "reqps",
        [Query(scope.rate(RUNS), scope.legend())],
        width=width,
    )


def failure_ratios(scope: Scope, description: str, *, width: int = 12) -> TimeseriesPanel:
    return timeseries(
        "Failure ratio",
        description,
        "percentunit",
        [Query(failure_ratio(scope), scope.legend("failure ratio"))],
        width=width,
    )


def latency(
    scope: Scope, title: str, description: str, quantiles: Sequence[float], *, width: int = 12
) -> TimeseriesPanel:
    return timeseries(
        title,
        description,
        "s",
        [Query(run_quantile(q, scope), scope.legend(f"p{round(q * 100)}")) for q in quantiles],
        width=width,
    )


def in_progress(scope: Scope, description: str, *, width: int = 12) -> TimeseriesPanel:
    # The gauge has no series before the first run: an unsplit panel shows 0 instead.
    expr = scope.sum(IN_PROGRESS) if scope.by else or_zero(scope.sum(IN_PROGRESS))
    return timeseries(
        "In progress",
        description,
        "short",
        [Query(expr, scope.legend("in progress"))],
        width=width,
    )
