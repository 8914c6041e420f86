"""The generated dashboards and rules, run by a real Prometheus scraping the app under gunicorn.

Traffic includes critical failures (declined and unavailable payments, an
order cancelled twice) and best-effort failures (the mail server is down, as a
task worker finds when it runs the queued emails; it shares the metrics
directory with gunicorn, as on a production host).
Every dashboard query and every rule must then parse, return data for both
orchestrators, and never answer NaN: neither while the orchestrators are
busy nor once they are idle.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import yaml

from orchestration import dashboards, registry
from tests.integration.traffic import Api
from tests.servers import (
    ROOT,
    RunningServer,
    app_env,
    free_port,
    http_request,
    manage,
    running_gunicorn,
    running_prometheus,
)

pytestmark = pytest.mark.integration

METRICS_TOKEN = "integration-metrics-token"
ORCHESTRATORS = ("cancel_order", "create_order")
#: What Grafana puts in place of the template variables when both are selected.
VARIABLES = {
    "$job": dashboards.SCRAPE_JOB,
    "$orchestrator": "(cancel_order|create_order)",
}
EMPTY_TASK_QUEUE = (
    "from django_tasks_db.models import DBTaskResult; DBTaskResult.objects.all().delete()"
)
#: Longer than the whole test's traffic, so that a busy query sees all of it.
BUSY_WINDOW = "2m"
#: Three scrapes: short enough to be idle a few seconds after the traffic stops.
IDLE_WINDOW = "3s"


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], Path]:
    """The generated files, rendered from the registry and written to a directory."""
    # The orders app's orchestrators; other tests may register more in this process.
    classes = [cls for cls in registry.registered() if cls.metric_name in ORCHESTRATORS]
    assert [cls.metric_name for cls in classes] == list(ORCHESTRATORS)
    files = dashboards.render(registry.describe(cls) for cls in classes)
    directory = tmp_path_factory.mktemp("generated")
    for relative, text in files.items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return files, directory


def test_promtool_accepts_the_rules_and_the_example_config(
    prometheus_tools: tuple[str, str], generated: tuple[dict[str, str], Path]
) -> None:
    _, promtool = prometheus_tools
    _, directory = generated
    for check, path in (
        ("rules", directory / "prometheus" / dashboards.RULES_FILE),
        ("config", directory / "prometheus" / "prometheus.yml"),
    ):
        completed = subprocess.run(
            [promtool, "check", check, str(path)], capture_output=True, text=True, check=False
        )
        assert completed.returncode == 0, completed.stdout + completed.stderr


class Prometheus:
    def __init__(self, server: RunningServer) -> None:
        self.server = server

    def get(self, path: str, **params: str) -> dict[str, Any]:
        query = f"?{urlencode(params)}" if params else ""
        status, _, body = http_request(f"{self.server.url}/api/v1/{path}{query}")
        payload = json.loads(body)
        assert status == 200, f"{path} {params}: {payload}"
        assert payload["status"] == "success", payload
        return payload["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return self.get("query", query=expr)["result"]

    def value(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def wait_until(
        self, description: str, condition: Callable[[], bool], timeout: float = 30
    ) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"Prometheus: {description} not reached within {timeout:g} s\n"
                    f"{self.server.log()[-3000:]}"
                )
            time.sleep(0.25)

    def wait_for_runs(self, count: int) -> None:
        expr = f'sum(orchestrator_duration_seconds_count{{job="{dashboards.SCRAPE_JOB}"}})'
        self.wait_until(f"{expr} == {count}", lambda: self.value(expr) == count)

    def wait_for_deliveries(self, count: int) -> None:
        """Queued steps delivered to the task worker (each retries the mail server first)."""
        expr = f'sum(orchestrator_queued_step_runs_total{{job="{dashboards.SCRAPE_JOB}"}})'
        self.wait_until(f"{expr} == {count}", lambda: self.value(expr) == count, timeout=90)


@pytest.fixture
def prometheus(
    prometheus_tools: tuple[str, str],
    generated: tuple[dict[str, str], Path],
    database_url: str,
    tmp_path: Path,
) -> Iterator[tuple[Prometheus, Api]]:
    """Prometheus (1 s scrapes and rule evaluations) scraping the app, with the mail server down."""
    files, _ = generated
    multiproc = tmp_path / "prometheus-multiproc"
    multiproc.mkdir()
    env = app_env(
        database_url=database_url,
        METRICS_TOKEN=METRICS_TOKEN,
        # Nothing listens there: every email fails, a best-effort step.
        EMAIL_URL=f"smtp://127.0.0.1:{free_port()}",
        PROMETHEUS_MULTIPROC_DIR=str(multiproc),
    )
    # The session's database is shared: tasks queued by earlier tests would be counted too.
    manage(env, "shell", "-c", EMPTY_TASK_QUEUE)
    # Two workers: Prometheus reads the multiprocess aggregate, as in production.
    with (
        running_gunicorn(env, workers=2, log_dir=tmp_path) as app,
        running_task_worker(env, tmp_path),
    ):
        config = yaml.safe_load(files["prometheus/prometheus.yml"])
        config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
        (scrape,) = config["scrape_configs"]
        scrape["static_configs"] = [{"targets": [f"127.0.0.1:{app.port}"]}]
        scrape["authorization"] = {"type": "Bearer", "credentials": METRICS_TOKEN}
        rules = {dashboards.RULES_FILE: files[f"prometheus/{dashboards.RULES_FILE}"]}
        with running_prometheus(config, tmp_path / "prometheus", files=rules) as server:
            yield Prometheus(server), Api.login(app.url)


@contextmanager
def running_task_worker(env: dict[str, str], log_dir: Path) -> Iterator[None]:
    """``manage.py db_worker``, started after gunicorn emptied the metrics directory."""
    with (log_dir / "db_worker.log").open("ab") as log:
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "db_worker", "--interval", "0.2", "--no-reload"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)


def _drive_traffic(prometheus: Prometheus, api: Api) -> None:
    """Both orchestrators, in two phases.

    The first phase creates the series; Prometheus scrapes them before the
    second, so that the second's increments show in ``rate`` (a series'
    first sample has no increase to compare with).
    """
    product = api.product_id("CB-004")

    def place(tokens: list[str], expected: list[int]) -> list[dict[str, Any]]:
        responses = api.place_orders(product, tokens)
        assert sorted(status for status, _ in responses) == sorted(expected), responses
        return [body for status, body in responses if status == 201]

    def cancel_twice(order: dict[str, Any]) -> None:
        cancelled, body = api.cancel_order(order["data"]["id"])
        assert cancelled == 200, body
        assert body["queued"] == ["notify_cancellation"], body
        again, body = api.cancel_order(order["data"]["id"])
        assert again == 409, body

    (first,) = place(["tok_visa", "tok_declined"], [201, 402])
    assert first["queued"] == ["send_confirmation", "track_analytics"], first
    cancel_twice(first)
    prometheus.wait_for_runs(4)
    prometheus.wait_for_deliveries(3)  # the worker met the mail outage: requeued

    placed = place(
        ["tok_visa"] * 5 + ["tok_declined"] * 3 + ["tok_unavailable"],
        [201] * 5 + [402] * 3 + [503],
    )
    cancel_twice(placed[0])
    prometheus.wait_for_runs(15)
    prometheus.wait_for_deliveries(14)


def _substitute(expr: str, window: str) -> str:
    expr = expr.replace("$__rate_interval", window).replace("$__interval", window)
    for variable, value in VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"unsubstituted variable in {expr}"
    return expr


def _dashboard_queries(files: dict[str, str], window: str) -> list[tuple[str, str]]:
    """(dashboard file, PromQL) for every panel target and every query variable."""
    queries = []
    for path, text in files.items():
        if not path.endswith(".json"):
            continue
        board = json.loads(text)
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                queries.append((path, _substitute(target["expr"], window)))
        for variable in board["templating"]["list"]:
            if variable["type"] == "query":
                metric, label = re.fullmatch(
                    r"label_values\((.+), (\w+)\)", variable["query"]
                ).groups()
                queries.append((path, _substitute(f"count by ({label}) ({metric})", window)))
    return queries


def _check_result(source: str, expr: str, result: list[dict[str, Any]]) -> None:
    assert result, f"{source}: no data for {expr}"
    for series in result:
        assert not math.isnan(float(series["value"][1])), f"{source}: NaN in {series} of {expr}"
    found = {
        series["metric"]["orchestrator"] for series in result if "orchestrator" in series["metric"]
    }
    if found:
        assert found >= set(ORCHESTRATORS), f"{source}: only {found} in {expr}"


def _check_all_queries(prometheus: Prometheus, files: dict[str, str], window: str) -> int:
    queries = _dashboard_queries(files, window)
    for source, expr in queries:
        _check_result(source, expr, prometheus.query(expr))
    return len(queries)


def test_every_dashboard_and_rule_query_answers_for_both_orchestrators(
    prometheus: tuple[Prometheus, Api], generated: tuple[dict[str, str], Path]
) -> None:
    server, api = prometheus
    files, _ = generated
    _drive_traffic(server, api)

    assert _check_all_queries(server, files, BUSY_WINDOW) > 40

    groups = yaml.safe_load(files[f"prometheus/{dashboards.RULES_FILE}"])["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    records = [rule["record"] for rule in rules if "record" in rule]

    def recorded_for_both(record: str) -> bool:
        found = server.query(f"count by (orchestrator) ({record})")
        return {series["metric"]["orchestrator"] for series in found} == set(ORCHESTRATORS)

    # Rules are evaluated each second, after the scrapes: wait for the first round
    # that saw the traffic, since records read other records.
    server.wait_until("every record written", lambda: all(map(recorded_for_both, records)))
    for rule in rules:
        result = server.query(rule["expr"])  # a parse error fails in Prometheus.get
        if "record" in rule:
            _check_result(rule["record"], rule["expr"], result)

    def all_rules_evaluated() -> bool:
        evaluated = [
            rule
            for group in server.get("rules")["groups"]
            for rule in group["rules"]
            if rule["health"] == "ok" and not rule.get("lastError")
        ]
        return len(evaluated) == len(rules)

    server.wait_until("every rule evaluated without error", all_rules_evaluated)

    def active_alerts() -> set[tuple[str, str]]:
        return {
            (alert["labels"]["alertname"], alert["labels"]["orchestrator"])
            for alert in server.get("alerts")["alerts"]
        }

    expected = {
        ("OrchestratorFailureRatioHigh", "create_order"),
        ("OrchestratorCriticalStepFailing", "create_order"),
    }
    server.wait_until(f"alerts {expected} pending", lambda: expected <= active_alerts())

    # Idle: nothing ran within the window; every query still answers, with 0 and no NaN.
    idle = f"sum(rate(orchestrator_duration_seconds_count[{IDLE_WINDOW}]))"
    server.wait_until(f"{idle} == 0", lambda: server.value(idle) == 0)
    _check_all_queries(server, files, IDLE_WINDOW)
