"""Prometheus recording rules: the heavy aggregations, evaluated once for the alerts."""

from __future__ import annotations

from orchestration.dashboards.promql import (
    CRITICAL,
    FAILED,
    RULE_WINDOW,
    RUN_SECONDS,
    RUNS,
    STEP_FAILURES,
    STEP_SECONDS,
    aggregate,
    quantile,
    rate_sum,
    ratio,
    selector,
)

PER_RUN = ("job", "orchestrator")
PER_STEP = ("job", "orchestrator", "step")

RUNS_RECORD = f"orchestrator:orchestrator_runs:rate{RULE_WINDOW}"
FAILURE_RATIO_RECORD = f"orchestrator:orchestrator_failure_ratio:ratio_rate{RULE_WINDOW}"
RUN_BUCKETS_RECORD = f"orchestrator:{RUN_SECONDS}_bucket:rate{RULE_WINDOW}"
RUN_P95_RECORD = f"orchestrator:{RUN_SECONDS}:p95_rate{RULE_WINDOW}"
STEP_BUCKETS_RECORD = f"orchestrator_step:{STEP_SECONDS}_bucket:rate{RULE_WINDOW}"
STEP_P95_RECORD = f"orchestrator_step:{STEP_SECONDS}:p95_rate{RULE_WINDOW}"
STEP_FAILURES_RECORD = f"orchestrator_step:orchestrator_step_failures:rate{RULE_WINDOW}"
CRITICAL_RATIO_RECORD = (
    f"orchestrator_step:orchestrator_step_critical_failure_ratio:ratio_rate{RULE_WINDOW}"
)

#: Runs per second of each orchestrator, all outcomes (alerts use it as a traffic floor).
ALL_RUNS = aggregate("sum", PER_RUN, RUNS_RECORD)


def recording_rules() -> list[dict[str, str]]:
    w = RULE_WINDOW
    step_runs = rate_sum(f"{STEP_SECONDS}_count", (), PER_STEP, w)
    critical_failures = aggregate("sum", PER_STEP, selector(STEP_FAILURES_RECORD, CRITICAL))
    recording = [
        (RUNS_RECORD, rate_sum(RUNS, (), (*PER_RUN, "outcome"), w)),
        (
            FAILURE_RATIO_RECORD,
            ratio(aggregate("sum", PER_RUN, selector(RUNS_RECORD, FAILED)), ALL_RUNS),
        ),
        (RUN_BUCKETS_RECORD, rate_sum(f"{RUN_SECONDS}_bucket", (), (*PER_RUN, "le"), w)),
        (RUN_P95_RECORD, quantile(0.95, RUN_BUCKETS_RECORD, ALL_RUNS)),
        (STEP_BUCKETS_RECORD, rate_sum(f"{STEP_SECONDS}_bucket", (), (*PER_STEP, "le"), w)),
        (STEP_P95_RECORD, quantile(0.95, STEP_BUCKETS_RECORD, step_runs)),
        (STEP_FAILURES_RECORD, rate_sum(STEP_FAILURES, (), (*PER_STEP, "critical", "code"), w)),
        (CRITICAL_RATIO_RECORD, ratio(critical_failures, step_runs)),
    ]
    return [{"record": record, "expr": expr} for record, expr in recording]
