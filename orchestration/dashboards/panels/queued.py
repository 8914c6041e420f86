"""After-commit steps run by task workers: deliveries by outcome, time in queue.

Left out (``None``) for an orchestrator without after-commit steps.
"""

from __future__ import annotations

from collections.abc import Sequence

from grafana_foundation_sdk.builders.timeseries import Panel as TimeseriesPanel

from orchestration.dashboards.promql import Scope, one_of, quantile, zero_filled
from orchestration.dashboards.widgets import Query, timeseries

QUEUED = "orchestrator_queued_steps_total"
QUEUED_RUNS = "orchestrator_queued_step_runs_total"
QUEUED_WAIT = "orchestrator_queued_step_wait_seconds"
OUTCOMES = ("ok", "failed", "requeued", "duplicate")


def deliveries(steps: Scope, names: Sequence[str]) -> TimeseriesPanel | None:
    if not names:
        return None
    named = steps.where(f'step=~"{one_of(names)}"')
    queued = named.rate(QUEUED)
    return timeseries(
        "Queued steps: deliveries",
        "Per second, by step: queued by committed runs, and deliveries to a task worker by "
        "outcome (ok; failed for good; requeued after a 503-class failure; duplicate: already "
        "done or running, nothing ran). Queued minus finished is the backlog.",
        "reqps",
        [
            Query(queued, f"{named.legend()} queued"),
            *(
                Query(
                    zero_filled(named.where(f'outcome="{outcome}"').rate(QUEUED_RUNS), queued),
                    f"{named.legend()} {outcome}",
                )
                for outcome in OUTCOMES
            ),
        ],
    )


def time_in_queue(steps: Scope, names: Sequence[str]) -> TimeseriesPanel | None:
    if not names:
        return None
    named = steps.where(f'step=~"{one_of(names)}"')
    buckets = named.rate(f"{QUEUED_WAIT}_bucket", "le")
    claims = named.rate(f"{QUEUED_WAIT}_count")
    return timeseries(
        "Queued steps: time in queue",
        "From the run's commit to the first worker that claimed the step (p50, p95).",
        "s",
        [
            Query(quantile(q, buckets, claims), f"{named.legend()} p{round(q * 100)}")
            for q in (0.5, 0.95)
        ],
    )
