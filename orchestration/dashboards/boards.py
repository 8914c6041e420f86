"""The dashboards, each a list of sections (rows of panels) over its scopes."""

from __future__ import annotations

from collections.abc import Iterable

from grafana_foundation_sdk.builders.dashboard import Dashboard

from orchestration.dashboards.panels import groups, http, queued, runs, steps
from orchestration.dashboards.promql import JOB, RUNS, Scope
from orchestration.dashboards.specs import OrchestratorSpec
from orchestration.dashboards.widgets import (
    Panel,
    Section,
    dashboard,
    dashboard_uid,
    label_variable,
)

OVERVIEW_UID = "orchestration-overview"


def _present(panels: Iterable[Panel | None]) -> list[Panel]:
    return [panel for panel in panels if panel is not None]


def orchestrator_dashboard(spec: OrchestratorSpec) -> Dashboard:
    """Runs, latency, failures and per-step panels of one orchestrator."""
    scope = Scope((JOB, f'orchestrator="{spec.name}"'))
    by_step = scope.split("step")
    sections = [
        Section(
            "Now",
            [
                runs.runs_stat(scope, "Runs per second, all outcomes."),
                runs.failure_ratio_stat(scope, "Share of runs that ended in a critical failure."),
                runs.latency_stat(scope),
                runs.step_failures_stat(scope, critical=False),
            ],
        ),
        Section(
            "Runs",
            [
                runs.runs(scope.split("outcome"), "Runs by outcome", width=8),
                runs.failure_ratios(
                    scope,
                    "Failed runs over all runs (critical failures; warnings are not failures).",
                    width=8,
                ),
                runs.latency(
                    scope,
                    "Latency",
                    "Quantiles of the run's wall time (after-commit steps run later, in a worker).",
                    (0.5, 0.95, 0.99),
                    width=8,
                ),
                runs.in_progress(scope, "Runs executing now, summed over every worker.", width=24),
            ],
        ),
        Section(
            "Steps",
            _present(
                [
                    steps.mean_latency(by_step),
                    steps.p95_latency(by_step),
                    steps.failures(by_step, spec.step_names(critical=True), critical=True),
                    steps.failures(by_step, spec.step_names(critical=False), critical=False),
                    steps.retries(by_step, spec.step_names(retried=True)),
                    steps.compensations(by_step, spec.step_names(compensated=True)),
                    steps.skipped(by_step, spec.step_names(conditional=True)),
                    queued.deliveries(by_step, spec.step_names(after_commit=True)),
                    queued.time_in_queue(by_step, spec.step_names(after_commit=True)),
                ]
            ),
        ),
    ]
    if spec.groups:
        sections.append(
            Section("Parallel groups", [groups.wall_time(scope, group) for group in spec.groups])
        )
    return dashboard(
        f"Orchestrator: {spec.name}",
        dashboard_uid(spec.name),
        f"{spec.class_path}. Pipeline: {spec.pipeline_text()}.",
        sections,
    )


def overview_dashboard() -> Dashboard:
    """Every orchestrator side by side, and the HTTP and database panels of the service."""
    selected = Scope((JOB, 'orchestrator=~"$orchestrator"'))
    by_orchestrator = selected.split("orchestrator")
    service = Scope((JOB,))
    sections = [
        Section(
            "Now",
            [
                runs.runs_stat(selected, "Runs per second of the selected orchestrators."),
                runs.failure_ratio_stat(
                    selected,
                    "Failed runs over all runs of the selected orchestrators "
                    "(weighted by traffic).",
                ),
                runs.in_progress_stat(selected),
                runs.step_failures_stat(selected, critical=True),
            ],
        ),
        Section(
            "Orchestrators",
            [
                runs.runs(by_orchestrator, "Runs"),
                runs.failure_ratios(by_orchestrator, "Failed runs over all runs, by orchestrator."),
                runs.latency(
                    by_orchestrator,
                    "Latency p95",
                    "95th percentile of the run's wall time, by orchestrator.",
                    (0.95,),
                ),
                runs.in_progress(by_orchestrator, "Runs executing now, by orchestrator."),
                steps.failures_by_kind(by_orchestrator),
                steps.retries_and_compensations(by_orchestrator),
            ],
        ),
        Section(
            "HTTP and database",
            [
                http.requests(service),
                http.server_errors(service),
                http.request_latency(service),
                http.responses_by_status(service),
                http.database_queries(service),
            ],
        ),
    ]
    return dashboard(
        "Orchestration overview",
        OVERVIEW_UID,
        "Every orchestrator (runs, failures, latency) and the HTTP and database "
        "metrics of django-prometheus.",
        sections,
        variables=[
            label_variable(
                "orchestrator", "Orchestrator", f"label_values({RUNS}{{{JOB}}}, orchestrator)"
            )
        ],
    )
