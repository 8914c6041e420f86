"""Example Prometheus configuration and Grafana provisioning for the generated files."""

from __future__ import annotations

from typing import Any

from orchestration.dashboards.alerts import alerts, effect_journal_alerts
from orchestration.dashboards.recording import recording_rules

DATASOURCE_UID = "orchestration-prometheus"
#: Where the provider of ``grafana/provisioning/dashboards`` reads the JSON files.
GRAFANA_DASHBOARDS_PATH = "/var/lib/grafana/dashboards/orchestration"
#: The scrape interval of the example Prometheus configuration; Grafana needs
#: it (``timeInterval``) to compute ``$__rate_interval``.
SCRAPE_INTERVAL = "15s"
SCRAPE_JOB = "orchestrated-django"
RULES_FILE = "orchestration.rules.yml"


def rule_groups() -> list[dict[str, Any]]:
    """Recording rules for the heavy aggregations, and the alerts built on them."""
    return [
        {"name": "orchestration.recording", "rules": recording_rules()},
        {"name": "orchestration.alerts", "rules": alerts()},
        {"name": "orchestration.effect_journal", "rules": effect_journal_alerts()},
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
