"""What ``generate_dashboards`` says it did: each file created, updated or removed."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

from django.core.management import call_command

RULES = "prometheus/orchestration.rules.yml"
OVERVIEW = "grafana/dashboards/orchestration-overview.json"
ORPHAN = "grafana/dashboards/orchestrator-removed.json"


def generate(output: Path) -> str:
    out = StringIO()
    call_command("generate_dashboards", "--output", str(output), stdout=out)
    return out.getvalue()


def test_a_first_run_reports_every_file_as_created(tmp_path: Path) -> None:
    report = generate(tmp_path)

    assert f"  created: {RULES}" in report
    assert f"  created: {OVERVIEW}" in report
    assert "missing" not in report


def test_a_later_run_names_what_it_created_updated_and_removed(tmp_path: Path) -> None:
    generate(tmp_path)
    (tmp_path / RULES).unlink()
    (tmp_path / OVERVIEW).write_text("{}\n")
    (tmp_path / ORPHAN).write_text("{}\n")

    report = generate(tmp_path).splitlines()

    assert report[0] == f"Wrote {tmp_path}:"
    assert sorted(report[1:]) == sorted(
        [f"  created: {RULES}", f"  updated: {OVERVIEW}", f"  removed: {ORPHAN}"]
    )
    assert "already up to date" in generate(tmp_path)
