"""The dashboards builder and the ``generate_dashboards`` command.

The queries themselves are run against a real Prometheus in
``tests/integration/test_prometheus.py``; these tests cover what needs no
server: the Grafana model, the registry as the only source, stable output and
``--check``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.management import CommandError, call_command
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import Dashboard as DashboardModel

from orchestration import BaseOrchestrator, OperationContext, Retry, Step, dashboards, registry
from orchestration.testing import isolated_registry


def _noop(ctx: OperationContext) -> OperationContext:
    return ctx


with isolated_registry():

    class DashboardsTestCheckout(BaseOrchestrator[OperationContext, None, None]):
        """Every kind of step the dashboards distinguish; described, never registered."""

        metric_name = "dashboards_test_checkout"
        pipeline = (
            Step("validate", _noop),
            Step("charge", _noop, retry=Retry(attempts=2), compensate=_noop),
            Step("notify", _noop, critical=False, after_commit=True, when=lambda ctx: True),
        )

        def initialize_context(self, input: None, **kwargs: Any) -> OperationContext:
            return OperationContext(**kwargs)

        def build_result(self, ctx: OperationContext) -> None:
            return None


def _description(name: str = "checkout", **overrides: Any) -> dict[str, Any]:
    return {**registry.describe(DashboardsTestCheckout), "name": name, **overrides}


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [panel for panel in dashboard["panels"] if panel["type"] != "row"]


def _expressions(dashboard: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in _panels(dashboard) for target in panel["targets"]]


@pytest.fixture(scope="module")
def rendered() -> dict[str, str]:
    return dashboards.render([_description()])


def test_every_dashboard_loads_into_the_grafana_model_unchanged(rendered: dict[str, str]) -> None:
    register_default_plugins()
    generated = {path: text for path, text in rendered.items() if path.endswith(".json")}
    assert len(generated) == 2
    for text in generated.values():
        data = json.loads(text)
        model = DashboardModel.from_json(data)
        # Decoding and encoding again loses nothing: every field is one the model knows.
        assert json.loads(JSONEncoder(sort_keys=True).encode(model)) == data
        assert model.uid == data["uid"]


def test_rendering_is_deterministic_and_independent_of_registry_order() -> None:
    first = dashboards.render([_description("alpha"), _description("beta")])
    second = dashboards.render([_description("beta"), _description("alpha")])
    assert first == second
    for path, text in first.items():
        assert text.endswith("\n"), path
        if path.endswith(".json"):
            assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"


def test_panel_ids_are_unique_and_sequential(rendered: dict[str, str]) -> None:
    for path, text in rendered.items():
        if path.endswith(".json"):
            ids = [panel["id"] for panel in json.loads(text)["panels"]]
            assert ids == list(range(1, len(ids) + 1)), path


def test_an_orchestrator_dashboard_follows_the_declared_steps(rendered: dict[str, str]) -> None:
    board = json.loads(rendered["grafana/dashboards/orchestrator-checkout.json"])
    titles = [panel["title"] for panel in _panels(board)]
    assert {
        "Critical step failures",
        "Best-effort step failures",
        "Retries",
        "Compensations",
    } <= set(titles)
    by_title = {panel["title"]: panel for panel in _panels(board)}
    assert 'step=~"validate|charge"' in by_title["Critical step failures"]["targets"][0]["expr"]
    assert 'step=~"notify"' in by_title["Best-effort step failures"]["targets"][0]["expr"]
    assert 'step=~"charge"' in by_title["Retries"]["targets"][0]["expr"]
    assert board["uid"] == "orchestrator-checkout"
    assert "validate (critical); charge (critical); notify (best effort)" in board["description"]


def test_panels_for_absent_features_are_left_out() -> None:
    plain = _description("plain", steps=[Step("only", _noop).describe()])
    board = json.loads(dashboards.render([plain])["grafana/dashboards/orchestrator-plain.json"])
    titles = {panel["title"] for panel in _panels(board)}
    assert "Critical step failures" in titles
    assert not titles & {"Best-effort step failures", "Retries", "Compensations", "Skipped steps"}


def test_queries_follow_the_conventions(rendered: dict[str, str]) -> None:
    for path, text in rendered.items():
        if not path.endswith(".json"):
            continue
        for expr in _expressions(json.loads(text)):
            windows = re.findall(r"\[([^\]]+)\]", expr)
            assert set(windows) <= {"$__rate_interval"}, expr
            assert expr.count("histogram_quantile") == len(
                re.findall(r"histogram_quantile\([0-9.]+, sum by \(le", expr)
            ), expr
            if "histogram_quantile" in expr or " / " in expr:
                # NaN (empty histogram, 0/0) is replaced by 0.
                assert " or (" in expr, expr


def test_ratios_divide_sums_so_they_are_weighted_by_traffic() -> None:
    expr = dashboards.ratio("sum by (a) (rate(x[1m]))", "sum by (a) (rate(y[1m]))")
    assert expr == (
        "(sum by (a) (rate(x[1m])) / (sum by (a) (rate(y[1m])) > 0))"
        " or (sum by (a) (rate(y[1m])) * 0)"
    )


def test_a_long_metric_name_gets_a_short_stable_uid() -> None:
    name = "a_very_long_orchestrator_name_that_goes_on_and_on"
    uid = dashboards.dashboard_uid(name)
    assert len(uid) <= 40
    assert uid == dashboards.dashboard_uid(name)
    assert uid != dashboards.dashboard_uid(name + "_2")


def test_rules_and_provisioning_are_valid_yaml(rendered: dict[str, str]) -> None:
    rules = yaml.safe_load(rendered["prometheus/orchestration.rules.yml"])
    alerts = {
        rule["alert"] for group in rules["groups"] for rule in group["rules"] if "alert" in rule
    }
    assert alerts == {
        "OrchestratorFailureRatioHigh",
        "OrchestratorLatencyP95High",
        "OrchestratorCriticalStepFailing",
        "OrchestratorRollbackIncomplete",
        "OrchestratorEffectsAwaitingRecovery",
    }
    config = yaml.safe_load(rendered["prometheus/prometheus.yml"])
    assert config["rule_files"] == ["orchestration.rules.yml"]
    datasource = yaml.safe_load(rendered["grafana/provisioning/datasources/orchestration.yaml"])
    assert (
        datasource["datasources"][0]["jsonData"]["timeInterval"]
        == config["global"]["scrape_interval"]
    )


def test_the_command_writes_every_registered_orchestrator_and_only_those(tmp_path: Path) -> None:
    call_command("generate_dashboards", "--output", str(tmp_path))
    written = sorted(path.name for path in (tmp_path / "grafana" / "dashboards").iterdir())
    registered = [f"orchestrator-{cls.metric_name}.json" for cls in registry.registered()]
    assert written == sorted([*registered, "orchestration-overview.json"])
    assert "orchestrator-dashboards_test_checkout.json" not in written
    call_command("generate_dashboards", "--check", "--output", str(tmp_path))


def test_check_lists_missing_stale_and_orphaned_files_and_writes_nothing(tmp_path: Path) -> None:
    call_command("generate_dashboards", "--output", str(tmp_path))
    overview = tmp_path / "grafana/dashboards/orchestration-overview.json"
    overview.write_text(overview.read_text().replace("Orchestration overview", "Old title"))
    (tmp_path / "prometheus/orchestration.rules.yml").unlink()
    orphan = tmp_path / "grafana/dashboards/orchestrator-removed.json"
    orphan.write_text("{}\n")

    with pytest.raises(CommandError) as raised:
        call_command("generate_dashboards", "--check", "--output", str(tmp_path))

    message = str(raised.value)
    assert "stale: grafana/dashboards/orchestration-overview.json" in message
    assert "missing: prometheus/orchestration.rules.yml" in message
    assert "unexpected: grafana/dashboards/orchestrator-removed.json" in message
    assert "Old title" in overview.read_text()
    assert orphan.exists()

    call_command("generate_dashboards", "--output", str(tmp_path))
    assert not orphan.exists()
    call_command("generate_dashboards", "--check", "--output", str(tmp_path))
