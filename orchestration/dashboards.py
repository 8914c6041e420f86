"""Grafana dashboards, Grafana provisioning and Prometheus rules for the registered orchestrators.

Everything is built from the registry's plain-data descriptions
(``registry.describe``), never from source code, and rendered
deterministically: the same registry gives byte-identical files, so a stale
committed file shows up as a diff (``generate_dashboards --check``).

Query conventions, shared by the dashboards and the rules:

* rates use ``$__rate_interval`` in dashboards (Grafana picks a window that
  holds at least four scrapes) and ``5m`` in rules;
* histogram buckets are summed ``by (le, ...)`` before ``histogram_quantile``,
  so quantiles cover every worker and instance;
* ratios divide sums (failures over runs of all instances), so they are
  weighted by traffic rather than averaged;
* an idle system shows 0, not NaN or "no data": see ``ratio``, ``quantile``
  and ``zero_filled``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
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

RATE = "$__rate_interval"
RULE_WINDOW = "5m"

#: The dashboards pick their Prometheus through the ``datasource`` variable,
#: so they work with the provisioned data source or any other one.
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
DATASOURCE_UID = "orchestration-prometheus"
DASHBOARD_TAG = "orchestration"
OVERVIEW_UID = "orchestration-overview"

#: Where the provider of ``grafana/provisioning/dashboards`` reads the JSON files.
GRAFANA_DASHBOARDS_PATH = "/var/lib/grafana/dashboards/orchestration"
#: The scrape interval of the example Prometheus configuration; Grafana needs
#: it (``timeInterval``) to compute ``$__rate_interval``.
SCRAPE_INTERVAL = "15s"
SCRAPE_JOB = "orchestrated-django"
RULES_FILE = "orchestration.rules.yml"

#: Alert thresholds (documented in README.md). A single critical step failing
#: in a quarter of its runs is an outage of that step's dependency, whatever
#: the codes say: error codes are domain-defined, so the alerts do not guess
#: which of them are server-side.
FAILURE_RATIO_THRESHOLD = 0.05
CRITICAL_STEP_FAILURE_RATIO_THRESHOLD = 0.25
P95_LATENCY_THRESHOLD_SECONDS = 1.0
#: Runs per second below which a ratio alert stays quiet (one failure in two runs is no trend).
MIN_RUN_RATE = 0.01

FAILED = 'outcome="failure"'
CRITICAL = 'critical="true"'
BEST_EFFORT = 'critical="false"'

RUNS = "orchestrator_duration_seconds_count"
RUN_SECONDS = "orchestrator_duration_seconds"
STEP_SECONDS = "orchestrator_step_duration_seconds"
STEP_FAILURES = "orchestrator_step_failures_total"
STEP_RETRIES = "orchestrator_step_retries_total"
STEP_SKIPPED = "orchestrator_step_skipped_total"
COMPENSATIONS = "orchestrator_compensations_total"
IN_PROGRESS = "orchestrator_in_progress"
HTTP_REQUESTS = "django_http_requests_total_by_view_transport_method_total"
HTTP_RESPONSES = "django_http_responses_total_by_status_view_method_total"
HTTP_SECONDS = "django_http_requests_latency_seconds_by_view_method"
DB_QUERIES = "django_db_execute_total"
DB_ERRORS = "django_db_errors_total"


# -- what the registry says -------------------------------------------------------


@dataclass(frozen=True)
class StepSpec:
    name: str
    critical: bool
    retried: bool
    compensated: bool
    conditional: bool


@dataclass(frozen=True)
class OrchestratorSpec:
    name: str
    class_path: str
    steps: tuple[StepSpec, ...]

    @classmethod
    def from_description(cls, description: Mapping[str, Any]) -> OrchestratorSpec:
        """Build from ``registry.describe(cls)``."""
        return cls(
            name=description["name"],
            class_path=description["class"],
            steps=tuple(
                StepSpec(
                    name=step["name"],
                    critical=step["critical"],
                    retried=step["retry"] is not None,
                    compensated=step["compensated"],
                    conditional=step["conditional"],
                )
                for step in description["steps"]
            ),
        )

    def step_names(
        self,
        *,
        critical: bool | None = None,
        retried: bool = False,
        compensated: bool = False,
        conditional: bool = False,
    ) -> list[str]:
        return [
            step.name
            for step in self.steps
            if (critical is None or step.critical is critical)
            and (not retried or step.retried)
            and (not compensated or step.compensated)
            and (not conditional or step.conditional)
        ]


# -- PromQL ---------------------------------------------------------------------


def selector(metric: str, *matchers: str) -> str:
    """``metric{a="b", ...}``; matchers are written out (``'job=~"$job"'``)."""
    return f"{metric}{{{', '.join(matchers)}}}" if matchers else metric


def rate_sum(metric: str, matchers: Sequence[str], labels: Sequence[str], window: str) -> str:
    """``sum by (labels) (rate(metric{matchers}[window]))``."""
    return aggregate("sum", labels, f"rate({selector(metric, *matchers)}[{window}])")


def aggregate(operator: str, labels: Sequence[str], expr: str) -> str:
    """``operator by (labels) (expr)``, or ``operator(expr)`` without labels."""
    return f"{operator} by ({', '.join(labels)}) ({expr})" if labels else f"{operator}({expr})"


def ratio(numerator: str, denominator: str) -> str:
    """``numerator / denominator``, 0 where the denominator is 0.

    Dividing by ``denominator > 0`` drops the idle series (0/0 would be NaN)
    and ``or denominator * 0`` puts them back as 0; a series with traffic but
    no numerator (no failure ever counted) also comes out as 0. Both sides
    must be aggregated by the same labels.
    """
    return f"({numerator} / ({denominator} > 0)) or ({denominator} * 0)"


def quantile(q: float, buckets: str, count: str) -> str:
    """``histogram_quantile`` over summed bucket rates, 0 where nothing was observed.

    ``buckets`` is aggregated by ``le`` and the grouping labels, ``count`` by
    the grouping labels alone. ``histogram_quantile`` answers NaN for an
    empty histogram; ``>= 0`` drops NaN and ``or count * 0`` puts a 0 there.
    """
    return f"(histogram_quantile({q}, {buckets}) >= 0) or ({count} * 0)"


def zero_filled(expr: str, filler: str) -> str:
    """``expr``, plus a 0 series for each series of ``filler`` that ``expr`` lacks.

    Counters that appear only on first use (failures, compensations) are
    absent, not 0, until then; ``filler`` names the series that should read 0.
    """
    return f"{expr} or ({filler} * 0)"


def one_of(names: Iterable[str]) -> str:
    return "|".join(names)


# -- panels ----------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


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


def stat(title: str, description: str, unit: str, query: Query) -> StatPanel:
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
        .targets(_targets([query]))
    )


def _job_variable() -> QueryVariable:
    return (
        QueryVariable("job")
        .label("Job")
        .datasource(DATASOURCE)
        .query(f"label_values({RUNS}, job)")
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".+")
    )


def _dashboard(title: str, uid: str, description: str) -> Dashboard:
    return (
        Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([DASHBOARD_TAG])
        .time("now-1h", "now")
        .refresh("30s")
        .timezone("browser")
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .with_variable(DatasourceVariable("datasource").label("Data source").type("prometheus"))
        .with_variable(_job_variable())
        .link(
            DashboardLink("Orchestration")
            .type(DashboardLinkType.DASHBOARDS)
            .tags([DASHBOARD_TAG])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
    )


def _numbered(dashboard: Dashboard, items: Sequence[Row | StatPanel | TimeseriesPanel]) -> None:
    """Add rows and panels in order, with ids 1, 2, ... (stable across runs)."""
    for number, item in enumerate(items, start=1):
        item.id(number)
        if isinstance(item, Row):
            dashboard.with_row(item)
        else:
            dashboard.with_panel(item)


def dashboard_uid(name: str) -> str:
    """A stable uid within Grafana's 40 characters."""
    uid = f"orchestrator-{name}"
    if len(uid) <= 40:
        return uid
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{uid[:31]}-{digest}"


def orchestrator_dashboard(spec: OrchestratorSpec) -> Dashboard:
    """Runs, latency, failures and per-step panels of one orchestrator."""
    scope = ('job=~"$job"', f'orchestrator="{spec.name}"')
    runs = rate_sum(RUNS, scope, (), RATE)
    failures = rate_sum(RUNS, (*scope, FAILED), (), RATE)
    run_buckets = rate_sum(f"{RUN_SECONDS}_bucket", scope, ("le",), RATE)

    def steps_of(names: Sequence[str]) -> tuple[str, ...]:
        return (*scope, f'step=~"{one_of(names)}"')

    def step_rate(metric: str, names: Sequence[str] | None = None, *extra: str) -> str:
        matchers = steps_of(names) if names is not None else scope
        return rate_sum(metric, (*matchers, *extra), ("step",), RATE)

    def failures_of(critical: bool) -> Query:
        names = spec.step_names(critical=critical)
        flag = "true" if critical else "false"
        return Query(
            zero_filled(
                step_rate(STEP_FAILURES, None, f'critical="{flag}"'),
                step_rate(f"{STEP_SECONDS}_count", names),
            ),
            "{{step}}",
        )

    items: list[Row | StatPanel | TimeseriesPanel] = [
        Row("Now"),
        stat("Runs", "Runs per second, all outcomes.", "reqps", Query(f"{runs} or vector(0)", "")),
        stat(
            "Failure ratio",
            "Share of runs that ended in a critical failure.",
            "percentunit",
            Query(f"{ratio(failures, runs)} or vector(0)", ""),
        ),
        stat(
            "Latency p95",
            "95th percentile of the run's wall time.",
            "s",
            Query(f"{quantile(0.95, run_buckets, runs)} or vector(0)", ""),
        ),
        stat(
            "Warnings",
            "Best-effort step failures per second: the run succeeded with a warning.",
            "reqps",
            Query(f"{rate_sum(STEP_FAILURES, (*scope, BEST_EFFORT), (), RATE)} or vector(0)", ""),
        ),
        Row("Runs"),
        timeseries(
            "Runs by outcome",
            "Runs per second, by outcome.",
            "reqps",
            [Query(rate_sum(RUNS, scope, ("outcome",), RATE), "{{outcome}}")],
            width=8,
        ),
        timeseries(
            "Failure ratio",
            "Failed runs over all runs (critical failures; warnings are not failures).",
            "percentunit",
            [Query(ratio(failures, runs), "failure ratio")],
            width=8,
        ),
        timeseries(
            "Latency",
            "Quantiles of the run's wall time, after-commit steps included.",
            "s",
            [
                Query(quantile(q, run_buckets, runs), f"p{round(q * 100)}")
                for q in (0.5, 0.95, 0.99)
            ],
            width=8,
        ),
        timeseries(
            "In progress",
            "Runs executing now, summed over every worker.",
            "short",
            [
                Query(
                    f"{aggregate('sum', (), selector(IN_PROGRESS, *scope))} or vector(0)",
                    "in progress",
                )
            ],
            width=24,
        ),
        Row("Steps"),
        timeseries(
            "Step latency (mean)",
            "Mean wall time of each step, retries and backoff included.",
            "s",
            [
                Query(
                    ratio(step_rate(f"{STEP_SECONDS}_sum"), step_rate(f"{STEP_SECONDS}_count")),
                    "{{step}}",
                )
            ],
        ),
        timeseries(
            "Step latency (p95)",
            "95th percentile of each step's wall time.",
            "s",
            [
                Query(
                    quantile(
                        0.95,
                        rate_sum(f"{STEP_SECONDS}_bucket", scope, ("le", "step"), RATE),
                        step_rate(f"{STEP_SECONDS}_count"),
                    ),
                    "{{step}}",
                )
            ],
        ),
    ]
    if spec.step_names(critical=True):
        items.append(
            timeseries(
                "Critical step failures",
                "Failures per second of critical steps; each one fails the run. Steps: "
                + ", ".join(spec.step_names(critical=True))
                + ".",
                "reqps",
                [failures_of(critical=True)],
            )
        )
    if spec.step_names(critical=False):
        items.append(
            timeseries(
                "Best-effort step failures",
                "Failures per second of best-effort steps; the run goes on with a warning. "
                "Steps: " + ", ".join(spec.step_names(critical=False)) + ".",
                "reqps",
                [failures_of(critical=False)],
            )
        )
    retried = spec.step_names(retried=True)
    if retried:
        items.append(
            timeseries(
                "Retries",
                "Retries per second (attempts after the first) of steps with a retry policy.",
                "reqps",
                [Query(step_rate(STEP_RETRIES, retried), "{{step}}")],
            )
        )
    compensated = spec.step_names(compensated=True)
    if compensated:
        items.append(
            timeseries(
                "Compensations",
                "Compensations per second after a critical failure; a failed one needs a person.",
                "reqps",
                [
                    Query(
                        zero_filled(
                            step_rate(COMPENSATIONS, compensated, f'outcome="{outcome}"'),
                            step_rate(f"{STEP_SECONDS}_count", compensated),
                        ),
                        f"{{{{step}}}} {outcome}",
                    )
                    for outcome in ("ok", "failed")
                ],
            )
        )
    conditional = spec.step_names(conditional=True)
    if conditional:
        items.append(
            timeseries(
                "Skipped steps",
                "Steps skipped per second because their condition was false.",
                "reqps",
                [Query(step_rate(STEP_SKIPPED, conditional), "{{step}}")],
            )
        )

    steps = "; ".join(
        f"{step.name} ({'critical' if step.critical else 'best effort'})" for step in spec.steps
    )
    dashboard = _dashboard(
        f"Orchestrator: {spec.name}",
        dashboard_uid(spec.name),
        f"{spec.class_path}. Pipeline: {steps}.",
    )
    _numbered(dashboard, items)
    return dashboard


def overview_dashboard() -> Dashboard:
    """Every orchestrator side by side, and the HTTP and database panels of the service."""
    scope = ('job=~"$job"', 'orchestrator=~"$orchestrator"')
    runs = rate_sum(RUNS, scope, ("orchestrator",), RATE)
    all_runs = rate_sum(RUNS, scope, (), RATE)

    def failures(*labels: str, critical: str | None = None) -> str:
        flag = () if critical is None else (f'critical="{critical}"',)
        return rate_sum(STEP_FAILURES, (*scope, *flag), labels, RATE)

    http = ('job=~"$job"',)
    http_responses = rate_sum(HTTP_RESPONSES, http, ("view",), RATE)
    items: list[Row | StatPanel | TimeseriesPanel] = [
        Row("Now"),
        stat(
            "Runs",
            "Runs per second of the selected orchestrators.",
            "reqps",
            Query(f"{all_runs} or vector(0)", ""),
        ),
        stat(
            "Failure ratio",
            "Failed runs over all runs of the selected orchestrators (weighted by traffic).",
            "percentunit",
            Query(
                f"{ratio(rate_sum(RUNS, (*scope, FAILED), (), RATE), all_runs)} or vector(0)", ""
            ),
        ),
        stat(
            "In progress",
            "Runs executing now, over every worker.",
            "short",
            Query(f"{aggregate('sum', (), selector(IN_PROGRESS, *scope))} or vector(0)", ""),
        ),
        stat(
            "Critical step failures",
            "Critical step failures per second; each one fails its run.",
            "reqps",
            Query(f"{rate_sum(STEP_FAILURES, (*scope, CRITICAL), (), RATE)} or vector(0)", ""),
        ),
        Row("Orchestrators"),
        timeseries(
            "Runs", "Runs per second, by orchestrator.", "reqps", [Query(runs, "{{orchestrator}}")]
        ),
        timeseries(
            "Failure ratio",
            "Failed runs over all runs, by orchestrator.",
            "percentunit",
            [
                Query(
                    ratio(rate_sum(RUNS, (*scope, FAILED), ("orchestrator",), RATE), runs),
                    "{{orchestrator}}",
                )
            ],
        ),
        timeseries(
            "Latency p95",
            "95th percentile of the run's wall time, by orchestrator.",
            "s",
            [
                Query(
                    quantile(
                        0.95,
                        rate_sum(f"{RUN_SECONDS}_bucket", scope, ("le", "orchestrator"), RATE),
                        runs,
                    ),
                    "{{orchestrator}}",
                )
            ],
        ),
        timeseries(
            "In progress",
            "Runs executing now, by orchestrator.",
            "short",
            [
                Query(
                    aggregate("sum", ("orchestrator",), selector(IN_PROGRESS, *scope)),
                    "{{orchestrator}}",
                )
            ],
        ),
        timeseries(
            "Step failures",
            "Step failures per second, by orchestrator: critical ones fail the run, "
            "best-effort ones become warnings.",
            "reqps",
            [
                Query(
                    zero_filled(failures("orchestrator", critical="true"), runs),
                    "{{orchestrator}} critical",
                ),
                Query(
                    zero_filled(failures("orchestrator", critical="false"), runs),
                    "{{orchestrator}} best effort",
                ),
            ],
        ),
        timeseries(
            "Retries and compensations",
            "Step retries and compensations per second, by orchestrator.",
            "reqps",
            [
                Query(
                    rate_sum(STEP_RETRIES, scope, ("orchestrator",), RATE),
                    "{{orchestrator}} retries",
                ),
                Query(
                    zero_filled(rate_sum(COMPENSATIONS, scope, ("orchestrator",), RATE), runs),
                    "{{orchestrator}} compensations",
                ),
            ],
        ),
        Row("HTTP and database"),
        timeseries(
            "Requests",
            "HTTP requests per second, by view.",
            "reqps",
            [Query(rate_sum(HTTP_REQUESTS, http, ("view",), RATE), "{{view}}")],
        ),
        timeseries(
            "Server errors",
            "Share of responses with a 5xx status, by view.",
            "percentunit",
            [
                Query(
                    ratio(
                        rate_sum(HTTP_RESPONSES, (*http, 'status=~"5.."'), ("view",), RATE),
                        http_responses,
                    ),
                    "{{view}}",
                )
            ],
        ),
        timeseries(
            "Request latency p95",
            "95th percentile of the request's duration, by view.",
            "s",
            [
                Query(
                    quantile(
                        0.95,
                        rate_sum(f"{HTTP_SECONDS}_bucket", http, ("le", "view"), RATE),
                        rate_sum(f"{HTTP_SECONDS}_count", http, ("view",), RATE),
                    ),
                    "{{view}}",
                )
            ],
        ),
        timeseries(
            "Responses by status",
            "HTTP responses per second, by status code.",
            "reqps",
            [Query(rate_sum(HTTP_RESPONSES, http, ("status",), RATE), "{{status}}")],
        ),
        timeseries(
            "Database queries",
            "Queries and query errors per second, by database alias.",
            "reqps",
            [
                Query(rate_sum(DB_QUERIES, http, ("alias",), RATE), "{{alias}} queries"),
                Query(
                    zero_filled(
                        rate_sum(DB_ERRORS, http, ("alias",), RATE),
                        rate_sum(DB_QUERIES, http, ("alias",), RATE),
                    ),
                    "{{alias}} errors",
                ),
            ],
            width=24,
        ),
    ]
    dashboard = _dashboard(
        "Orchestration overview",
        OVERVIEW_UID,
        "Every orchestrator (runs, failures, latency) and the HTTP and database "
        "metrics of django-prometheus.",
    ).with_variable(
        QueryVariable("orchestrator")
        .label("Orchestrator")
        .datasource(DATASOURCE)
        .query(f'label_values({RUNS}{{job=~"$job"}}, orchestrator)')
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".+")
    )
    _numbered(dashboard, items)
    return dashboard


# -- Prometheus ------------------------------------------------------------------


def rule_groups() -> list[dict[str, Any]]:
    """Recording rules for the heavy aggregations, and the alerts built on them."""
    w = RULE_WINDOW
    per_run = ("job", "orchestrator")
    per_step = ("job", "orchestrator", "step")
    runs_record = f"orchestrator:orchestrator_runs:rate{w}"
    failure_ratio_record = f"orchestrator:orchestrator_failure_ratio:ratio_rate{w}"
    run_buckets_record = f"orchestrator:{RUN_SECONDS}_bucket:rate{w}"
    run_p95_record = f"orchestrator:{RUN_SECONDS}:p95_rate{w}"
    step_buckets_record = f"orchestrator_step:{STEP_SECONDS}_bucket:rate{w}"
    step_p95_record = f"orchestrator_step:{STEP_SECONDS}:p95_rate{w}"
    step_failures_record = f"orchestrator_step:orchestrator_step_failures:rate{w}"
    critical_ratio_record = (
        f"orchestrator_step:orchestrator_step_critical_failure_ratio:ratio_rate{w}"
    )
    all_runs = aggregate("sum", per_run, runs_record)
    step_runs = rate_sum(f"{STEP_SECONDS}_count", (), per_step, w)
    critical_failures = aggregate("sum", per_step, selector(step_failures_record, CRITICAL))
    recording = [
        (runs_record, rate_sum(RUNS, (), (*per_run, "outcome"), w)),
        (
            failure_ratio_record,
            ratio(aggregate("sum", per_run, selector(runs_record, FAILED)), all_runs),
        ),
        (run_buckets_record, rate_sum(f"{RUN_SECONDS}_bucket", (), (*per_run, "le"), w)),
        (run_p95_record, quantile(0.95, run_buckets_record, all_runs)),
        (step_buckets_record, rate_sum(f"{STEP_SECONDS}_bucket", (), (*per_step, "le"), w)),
        (step_p95_record, quantile(0.95, step_buckets_record, step_runs)),
        (step_failures_record, rate_sum(STEP_FAILURES, (), (*per_step, "critical", "code"), w)),
        (critical_ratio_record, ratio(critical_failures, step_runs)),
    ]
    alerts = [
        {
            "alert": "OrchestratorFailureRatioHigh",
            "expr": (
                f"({failure_ratio_record} > {FAILURE_RATIO_THRESHOLD})"
                f" and on (job, orchestrator) ({all_runs} > {MIN_RUN_RATE})"
            ),
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
        },
        {
            "alert": "OrchestratorLatencyP95High",
            "expr": f"{run_p95_record} > {P95_LATENCY_THRESHOLD_SECONDS}",
            "for": "10m",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": (
                    "{{ $labels.orchestrator }}: p95 latency {{ $value | humanizeDuration }}"
                ),
                "description": (
                    "The 95th percentile of {{ $labels.orchestrator }} runs ({{ $labels.job }}) "
                    f"stayed above {P95_LATENCY_THRESHOLD_SECONDS:g} s for 10 minutes. The "
                    "dashboard's step latency panels show which step is slow."
                ),
            },
        },
        {
            "alert": "OrchestratorCriticalStepFailing",
            "expr": (
                f"({critical_ratio_record} > {CRITICAL_STEP_FAILURE_RATIO_THRESHOLD})"
                f" and on (job, orchestrator) ({all_runs} > {MIN_RUN_RATE})"
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
                    f"{step_failures_record}; the logs carry the request ids."
                ),
            },
        },
    ]
    return [
        {
            "name": "orchestration.recording",
            "rules": [{"record": record, "expr": expr} for record, expr in recording],
        },
        {"name": "orchestration.alerts", "rules": alerts},
        {"name": "orchestration.effect_journal", "rules": effect_journal_alerts()},
    ]


def effect_journal_alerts() -> list[dict[str, Any]]:
    """Money (or any external effect) that a dead run left behind and recovery has not undone.

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


def prometheus_config() -> dict[str, Any]:
    """An example configuration: scrape the app and load the rules."""
    return {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "rule_files": [RULES_FILE],
        "scrape_configs": [
            {
                "job_name": SCRAPE_JOB,
                "metrics_path": "/metrics",
                "static_configs": [{"targets": ["127.0.0.1:8000"]}],
            }
        ],
    }


# -- Grafana provisioning ---------------------------------------------------------


def grafana_datasource() -> dict[str, Any]:
    return {
        "apiVersion": 1,
        "datasources": [
            {
                "name": "Prometheus (orchestration)",
                "uid": DATASOURCE_UID,
                "type": "prometheus",
                "access": "proxy",
                "url": "http://localhost:9090",
                "isDefault": True,
                "jsonData": {"timeInterval": SCRAPE_INTERVAL},
            }
        ],
    }


def grafana_dashboard_provider() -> dict[str, Any]:
    return {
        "apiVersion": 1,
        "providers": [
            {
                "name": "orchestration",
                "folder": "Orchestration",
                "type": "file",
                "disableDeletion": False,
                "allowUiUpdates": False,
                "updateIntervalSeconds": 30,
                "options": {"path": GRAFANA_DASHBOARDS_PATH},
            }
        ],
    }


# -- files -----------------------------------------------------------------------

DASHBOARDS_DIR = "grafana/dashboards"

GENERATED = "Generated by `python manage.py generate_dashboards`; regenerate, do not edit."


def render_json(dashboard: Dashboard) -> str:
    return JSONEncoder(sort_keys=True, indent=2).encode(dashboard.build()) + "\n"


def render_yaml(data: Any, *comments: str) -> str:
    """YAML in the order the dictionaries were built (the order the tools document)."""
    header = "".join(f"# {line}\n" for line in (GENERATED, *comments))
    # No line folding: a PromQL expression stays on one line.
    return header + yaml.safe_dump(data, sort_keys=False, width=1_000_000, allow_unicode=True)


def render(descriptions: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Every generated file, by path relative to the output directory, in a stable order."""
    specs = sorted(
        (OrchestratorSpec.from_description(description) for description in descriptions),
        key=lambda spec: spec.name,
    )
    files = {f"{DASHBOARDS_DIR}/orchestration-overview.json": render_json(overview_dashboard())}
    for spec in specs:
        files[f"{DASHBOARDS_DIR}/orchestrator-{spec.name}.json"] = render_json(
            orchestrator_dashboard(spec)
        )
    files["grafana/provisioning/datasources/orchestration.yaml"] = render_yaml(grafana_datasource())
    files["grafana/provisioning/dashboards/orchestration.yaml"] = render_yaml(
        grafana_dashboard_provider()
    )
    files["prometheus/prometheus.yml"] = render_yaml(
        prometheus_config(),
        "An example: point the target at the app; with METRICS_TOKEN set, add",
        "`authorization: {credentials_file: /path/to/token}` to the scrape config.",
    )
    files[f"prometheus/{RULES_FILE}"] = render_yaml({"groups": rule_groups()})
    return files


@dataclass(frozen=True)
class Drift:
    missing: list[str]
    stale: list[str]
    unexpected: list[str]

    def __bool__(self) -> bool:
        return bool(self.missing or self.stale or self.unexpected)

    def describe(self) -> str:
        lines = [f"  missing: {path}" for path in self.missing]
        lines += [f"  stale: {path}" for path in self.stale]
        lines += [f"  unexpected: {path}" for path in self.unexpected]
        return "\n".join(lines)


def _unexpected(files: Mapping[str, str], output: Path) -> list[str]:
    """Dashboards in the output that no orchestrator generates any more (a removed one)."""
    folder = output / DASHBOARDS_DIR
    if not folder.is_dir():
        return []
    return sorted(
        relative
        for relative in (f"{DASHBOARDS_DIR}/{path.name}" for path in folder.glob("*.json"))
        if relative not in files
    )


def compare(files: Mapping[str, str], output: Path) -> Drift:
    """How the files on disk differ from ``files``."""
    missing, stale = [], []
    for relative, content in files.items():
        path = output / relative
        if not path.is_file():
            missing.append(relative)
        elif path.read_text(encoding="utf-8") != content:
            stale.append(relative)
    return Drift(missing=missing, stale=stale, unexpected=_unexpected(files, output))


def write(files: Mapping[str, str], output: Path) -> Drift:
    """Bring ``output`` up to date: write what differs, remove orphaned dashboards."""
    drift = compare(files, output)
    for relative in (*drift.missing, *drift.stale):
        path = output / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(files[relative], encoding="utf-8")
    for relative in drift.unexpected:
        (output / relative).unlink()
    return drift
