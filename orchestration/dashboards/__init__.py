"""Grafana dashboards, Grafana provisioning and Prometheus rules for the registered orchestrators.

Everything is built from the registry's plain-data descriptions
(``registry.describe``), never from source code, and rendered
deterministically: the same registry gives byte-identical files, so a stale
committed file shows up as a diff (``generate_dashboards --check``).

* ``promql``: metric names, query helpers and the ``Scope`` a panel covers;
* ``panels``: one builder per panel (runs, steps, HTTP), shared by the
  dashboards through their scope;
* ``boards``: each dashboard as a list of rows;
* ``recording`` and ``alerts``: the Prometheus rules;
* ``provisioning``: example Prometheus and Grafana configuration;
* ``files``: rendering, and comparing with the files on disk.
"""

from orchestration.extras import require

require("dashboards", "grafana_foundation_sdk", "yaml", feature="orchestration.dashboards")

# ruff: noqa: E402 (the imports that need the extra follow the check)
from orchestration.dashboards.files import Drift, compare, render, write
from orchestration.dashboards.promql import ratio
from orchestration.dashboards.provisioning import RULES_FILE, SCRAPE_JOB
from orchestration.dashboards.widgets import dashboard_uid

__all__ = [
    "RULES_FILE",
    "SCRAPE_JOB",
    "Drift",
    "compare",
    "dashboard_uid",
    "ratio",
    "render",
    "write",
]
