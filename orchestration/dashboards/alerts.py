"""Prometheus alerts, built on the recording rules.

Thresholds are documented in README.md. A single critical step failing in a
quarter of its runs is an outage of that step's dependency, whatever the
codes say: error codes are domain-defined, so the alerts do not guess which
of them are server-side.
"""

from __future__ import annotations

from typing import Any

from orchestration.dashboards.promql import aggregate
from orchestration.dashboards.recording import (
    ALL_RUNS,
    CRITICAL_RATIO_RECORD,
    FAILURE_RATIO_RECORD,
    RUN_P95_RECORD,
    STEP_FAILURES_RECORD,
)

FAILURE_RATIO_THRESHOLD = 0.05
CRITICAL_STEP_FAILURE_RATIO_THRESHOLD = 0.25
P95_LATENCY_THRESHOLD_SECONDS = 1.0
#: Runs per second below which a ratio alert stays quiet (one failure in two runs is no trend).
MIN_RUN_RATE = 0.01

_WITH_TRAFFIC = f" and on (job, orchestrator) ({ALL_RUNS} > {MIN_RUN_RATE})"


def failure_ratio_high() -> dict[str, Any]:
    return {
        "alert": "OrchestratorFailureRatioHigh",
        "expr": f"({FAILURE_RATIO_RECORD} > {FAILURE_RATIO_THRESHOLD}){_WITH_TRAFFIC}",
        "for": "10m",
        "labels": {"severity": "warning"},
        "annotations": {
            "summary": (
                "{{ $labels.orchestrator }}: {{ $value | humanizePercentage }} of runs fail"
            ),
            "description": (
                f"More than {FAILURE_RATIO_THRESHOLD:.0%} of the runs of "
                "{{ $labels.orchestrator }} ({{ $labels.job }}) ended in a critical failure "
                "over the last 5 minutes. The dashboard's critical-step panel names the step."
            ),
        },
    }


def latency_p95_high() -> dict[str, Any]:
    return {
        "alert": "OrchestratorLatencyP95High",
        "expr": f"{RUN_P95_RECORD} > {P95_LATENCY_THRESHOLD_SECONDS}",
        "for": "10m",
        "labels": {"severity": "warning"},
        "annotations": {
            "summary": "{{ $labels.orchestrator }}: p95 latency {{ $value | humanizeDuration }}",
            "description": (
                "The 95th percentile of {{ $labels.orchestrator }} runs ({{ $labels.job }}) "
                f"stayed above {P95_LATENCY_THRESHOLD_SECONDS:g} s for 10 minutes. The "
                "dashboard's step latency panels show which step is slow."
            ),
        },
    }


def critical_step_failing() -> dict[str, Any]:
    return {
        "alert": "OrchestratorCriticalStepFailing",
        "expr": (
            f"({CRITICAL_RATIO_RECORD} > {CRITICAL_STEP_FAILURE_RATIO_THRESHOLD}){_WITH_TRAFFIC}"
        ),
        "for": "5m",
        "labels": {"severity": "critical"},
        "annotations": {
            "summary": (
                "{{ $labels.orchestrator }}: critical step {{ $labels.step }} fails "
                "{{ $value | humanizePercentage }} of the time"
            ),
            "description": (
                "Critical step {{ $labels.step }} of {{ $labels.orchestrator }} "
                f"({{{{ $labels.job }}}}) failed in more than "
                f"{CRITICAL_STEP_FAILURE_RATIO_THRESHOLD:.0%} of its runs for 5 minutes, and "
                "each such failure fails the run. The failures by code are in "
                f"{STEP_FAILURES_RECORD}; the logs carry the request ids."
            ),
        },
    }


def alerts() -> list[dict[str, Any]]:
    return [failure_ratio_high(), latency_p95_high(), critical_step_failing()]


def effect_journal_alerts() -> list[dict[str, Any]]:
    """External effects (a captured payment) that a dead run left behind, not yet undone.

    The gauges count database rows, so every worker reports the same value:
    ``max``, not ``sum``, across the scraped processes.
    """
    per_step = ("job", "orchestrator", "step")
    return [
        {
            "alert": "OrchestratorRollbackIncomplete",
            "expr": aggregate("max", per_step, "orchestrator_effects_rollback_incomplete") + " > 0",
            "for": "10m",
            "labels": {"severity": "critical"},
            "annotations": {
                "summary": (
                    "{{ $labels.orchestrator }}.{{ $labels.step }}: {{ $value }} rollbacks "
                    "incomplete"
                ),
                "description": (
                    "The compensation of {{ $value }} journaled effects of step "
                    "{{ $labels.step }} ({{ $labels.orchestrator }}) keeps failing: an external "
                    "effect (a captured payment, for example) stands without its run. "
                    "recover_effects retries them with backoff; the admin's effect journal, "
                    "filtered on 'Rollback incomplete', shows each entry and its last error."
                ),
            },
        },
        {
            "alert": "OrchestratorEffectsAwaitingRecovery",
            "expr": aggregate("max", per_step, "orchestrator_effects_awaiting_recovery") + " > 0",
            "for": "15m",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": (
                    "{{ $labels.orchestrator }}.{{ $labels.step }}: {{ $value }} effects of dead "
                    "runs not recovered"
                ),
                "description": (
                    "Runs of {{ $labels.orchestrator }} died after step {{ $labels.step }} "
                    "recorded its external effect, and nothing has undone it for 15 minutes: "
                    "is `manage.py recover_effects` running?"
                ),
            },
        },
    ]
