"""The Grafana pieces every dashboard is made of: panels, variables, rows, the frame."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from grafana_foundation_sdk.builders.common import ReduceDataOptions, VizLegendOptions
from grafana_foundation_sdk.builders.dashboard import (
    Dashboard,
    DashboardLink,
    DatasourceVariable,
    QueryVariable,
    Row,
)
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.builders.stat import Panel as StatPanel
from grafana_foundation_sdk.builders.timeseries import Panel as TimeseriesPanel
from grafana_foundation_sdk.cog import variants
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import (
    BigValueGraphMode,
    LegendDisplayMode,
    LegendPlacement,
)
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DashboardLinkType,
    DataSourceRef,
    VariableRefresh,
    VariableSort,
)

from orchestration.dashboards.promql import RUNS, or_zero

#: The dashboards pick their Prometheus through the ``datasource`` variable,
#: so they work with the provisioned data source or any other one.
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
DASHBOARD_TAG = "orchestration"

Panel = StatPanel | TimeseriesPanel


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class Section:
    """A titled row of panels; a dashboard is a list of them."""

    title: str
    panels: Sequence[Panel]


def _targets(queries: Sequence[Query]) -> list[Builder[variants.Dataquery]]:
    return [
        Dataquery().expr(query.expr).legend_format(query.legend).ref_id(chr(ord("A") + index))
        for index, query in enumerate(queries)
    ]


def timeseries(
    title: str, description: str, unit: str, queries: Sequence[Query], *, width: int = 12
) -> TimeseriesPanel:
    return (
        TimeseriesPanel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .min(0)
        .span(width)
        .height(8)
        .fill_opacity(10)
        .legend(
            VizLegendOptions()
            .display_mode(LegendDisplayMode.LIST)
            .placement(LegendPlacement.BOTTOM)
            .show_legend(True)
        )
        .targets(_targets(queries))
    )


def stat(title: str, description: str, unit: str, expr: str) -> StatPanel:
    """One number: the last value of ``expr``, 0 before its first series exists."""
    return (
        StatPanel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(6)
        .height(4)
        .graph_mode(BigValueGraphMode.AREA)
        .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .targets(_targets([Query(or_zero(expr), "")]))
    )


def label_variable(name: str, label: str, query: str) -> QueryVariable:
    """A multi-value variable over a label's values; "All" matches any value."""
    return (
        QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(query)
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".+")
    )


def dashboard(
    title: str,
    uid: str,
    description: str,
    sections: Sequence[Section],
    *,
    variables: Sequence[QueryVariable] = (),
) -> Dashboard:
    """The frame every dashboard shares, then its sections with ids 1, 2, ... (stable)."""
    board = (
        Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([DASHBOARD_TAG])
        .time("now-1h", "now")
        .refresh("30s")
        .timezone("browser")
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .with_variable(DatasourceVariable("datasource").label("Data source").type("prometheus"))
        .with_variable(label_variable("job", "Job", f"label_values({RUNS}, job)"))
        .link(
            DashboardLink("Orchestration")
            .type(DashboardLinkType.DASHBOARDS)
            .tags([DASHBOARD_TAG])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
    )
    for variable in variables:
        board.with_variable(variable)
    number = 0
    for section in sections:
        number += 1
        board.with_row(Row(section.title).id(number))
        for panel in section.panels:
            number += 1
            board.with_panel(panel.id(number))
    return board


def dashboard_uid(name: str) -> str:
    """A stable uid within Grafana's 40 characters."""
    uid = f"orchestrator-{name}"
    if len(uid) <= 40:
        return uid
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{uid[:31]}-{digest}"


def render_json(board: Dashboard) -> str:
    return JSONEncoder(sort_keys=True, indent=2).encode(board.build()) + "\n"
