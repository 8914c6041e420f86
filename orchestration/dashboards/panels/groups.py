"""Parallel groups: a group's wall time beside the wall times of its steps."""

from __future__ import annotations

from grafana_foundation_sdk.builders.timeseries import Panel as TimeseriesPanel

from orchestration.dashboards.promql import GROUP_SECONDS, STEP_SECONDS, Scope, one_of, quantile
from orchestration.dashboards.specs import GroupSpec
from orchestration.dashboards.widgets import Query, timeseries


def wall_time(scope: Scope, group: GroupSpec) -> TimeseriesPanel:
    """The group's p95 wall time and its steps' p95, on one panel."""
    whole = scope.where(f'group="{group.name}"').split("group")
    parts = scope.where(f'step=~"{one_of(group.steps)}"').split("step")
    return timeseries(
        f"Parallel group {group.name} (p95)",
        f"95th percentile of the wall time of group {group.name} and of each of its steps "
        f"({', '.join(group.steps)}). The steps run at the same time: the group should take "
        "about as long as its slowest step, not their sum.",
        "s",
        [
            Query(
                quantile(
                    0.95,
                    whole.rate(f"{GROUP_SECONDS}_bucket", "le"),
                    whole.rate(f"{GROUP_SECONDS}_count"),
                ),
                "group {{group}}",
            ),
            Query(
                quantile(
                    0.95,
                    parts.rate(f"{STEP_SECONDS}_bucket", "le"),
                    parts.rate(f"{STEP_SECONDS}_count"),
                ),
                "{{step}}",
            ),
        ],
        width=24,
    )
