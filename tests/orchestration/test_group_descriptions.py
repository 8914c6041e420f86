"""Parallel groups shown as groups: the listing, the API description and the dashboards."""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

from django.core.management import call_command

from orchestration import dashboards, diagrams, registry
from orchestration.drf import describe_pipeline
from orders.orchestrators import AsyncQuote, Quote


def test_the_listing_numbers_a_group_and_then_its_steps():
    out = StringIO()
    call_command("orchestrators", stdout=out)

    block = out.getvalue().split("\n\n")
    [quote] = [text for text in block if text.startswith("quote ")]
    lines = [line.split()[:2] for line in quote.splitlines()[1:]]
    assert lines == [
        ["1.", "validate_quote"],
        ["2.", "quotes"],
        ["2a.", "quote_shipping"],
        ["2b.", "quote_tax"],
    ]
    assert "parallel group: 2 steps at once" in quote


def test_the_json_listing_nests_the_steps_of_a_group():
    out = StringIO()
    call_command("orchestrators", "--format", "json", stdout=out)

    [quote] = [item for item in json.loads(out.getvalue()) if item["name"] == "quote_async"]
    group = quote["steps"][1]
    assert group["name"] == "quotes"
    assert [
        (step["name"], step["outputs"], step["asynchronous"]) for step in group["branches"]
    ] == [
        ("quote_shipping", ["shipping"], True),
        ("quote_tax", ["tax"], True),
    ]


def test_the_api_description_lists_the_group_and_its_steps():
    table = describe_pipeline(Quote).splitlines()

    assert table[3] == (
        "| 2 | `quotes` | parallel group | `quote_shipping`, `quote_tax` run at the same time |"
    )
    assert table[4].startswith("| 2a | `quote_shipping` | critical |")
    assert "async" in describe_pipeline(AsyncQuote).splitlines()[5]


def _panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in board["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def test_the_dashboard_has_a_group_panel_and_counts_the_group_steps_as_steps():
    files = dashboards.render([registry.describe(Quote)])
    board = json.loads(files["grafana/dashboards/orchestrator-quote.json"])
    panels = {panel["title"]: panel for panel in _panels(board)}

    assert "quotes [quote_shipping (critical) | quote_tax (critical)]" in board["description"]
    group = panels["Parallel group quotes (p95)"]
    expressions = [target["expr"] for target in group["targets"]]
    assert (
        'orchestrator_group_duration_seconds_bucket{job=~"$job", orchestrator="quote", '
        'group="quotes"}' in expressions[0]
    )
    assert 'step=~"quote_shipping|quote_tax"' in expressions[1]
    critical = panels["Critical step failures"]["description"]
    assert "quote_shipping" in critical
    assert "quotes," not in critical


def test_the_diagram_draws_a_group_as_a_box_the_line_runs_through():
    chart = diagrams.flowchart(registry.describe(Quote))

    assert 'subgraph step_quotes["quotes: at the same time"]' in chart
    inside = chart.split("subgraph step_quotes")[1].split("\n    end\n")[0]
    assert "step_quote_shipping[" in inside
    assert "step_quote_tax[" in inside
    assert "step_validate_quote --> step_quotes" in chart
    assert "step_quotes --> done" in chart
    # Its retry policy is a line in its own box (a loop's label collided with other boxes).
    assert 'step_quote_tax["quote_tax<br/>' in inside
    assert "retried up to 2 attempts on ServiceUnavailable" in inside.split("step_quote_tax[")[1]


def test_a_run_over_the_diagram_colours_the_steps_of_a_group():
    run = [
        {"name": "validate_quote", "status": "ok", "duration_ms": 1.0},
        {"name": "quotes", "status": "failed", "duration_ms": 80.0},
        {"name": "quote_shipping", "status": "cancelled", "duration_ms": 0.0},
        {"name": "quote_tax", "status": "failed", "duration_ms": 80.0},
    ]

    chart = diagrams.flowchart(registry.describe(Quote), run=run)

    styled = {
        style: ids.split(",")
        for ids, style in (
            line.strip().removeprefix("class ").rsplit(" ", 1)
            for line in chart.splitlines()
            if line.strip().startswith("class ")
        )
    }
    assert "step_quote_tax" in styled["failed"]
    assert "step_quote_shipping" in styled["not_run"]  # cancelled: it never ran
    assert "quote_shipping<br/>cancelled" in chart
