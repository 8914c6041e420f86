"""Mermaid flowcharts drawn from the registry: the command, the docs copy, the schema."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from drf_spectacular.generators import SchemaGenerator

from orchestration import BaseOrchestrator, OperationContext, Retry, Step, diagrams, registry
from orders.orchestrators import CreateOrder

# The example project's page draws its pipelines (`orchestrators --readme` keeps the copy).
EXAMPLE_PAGE = Path(__file__).resolve().parents[2] / "docs" / "example-project.md"


def weigh(ctx: OperationContext) -> OperationContext:
    return ctx


def release_label(ctx: OperationContext) -> None:
    return None


def is_fragile(ctx: OperationContext) -> bool:
    return True


@pytest.fixture
def shipping() -> Iterator[type[BaseOrchestrator[Any, Any, Any]]]:
    class ShipParcel(BaseOrchestrator[OperationContext, None, None]):
        __module__ = "shipping.orchestrators"
        __qualname__ = "ShipParcel"
        pipeline = (
            Step("weigh", weigh),
            Step("pad", weigh, when=is_fragile),
            Step("buy_label", weigh, retry=Retry(attempts=4), compensate=release_label),
            Step("end", weigh),
            Step("notify_customer", weigh, critical=False, after_commit=True, timeout=2.5),
        )

    yield ShipParcel
    registry.unregister(ShipParcel)


def test_a_pipeline_is_drawn_with_its_flags(shipping):
    chart = diagrams.flowchart(registry.describe(shipping))

    lines = chart.splitlines()
    assert lines[0] == "flowchart TD"
    # A step called `end` would close a Mermaid block: ids are prefixed.
    assert '    step_end["end<br/>critical"]' in lines
    assert '    step_notify_customer("notify_customer<br/>best effort, 2.5 s budget")' in lines
    assert '    step_weigh -. "skipped unless is_fragile" .-> step_buy_label' in lines
    # A retry policy is a line of its box: a loop's label would lie over the next boxes.
    assert (
        '    step_buy_label["buy_label<br/>critical<br/>'
        'retried up to 4 attempts on ServiceUnavailable"]' in lines
    )
    assert not [line for line in lines if "-->" in line and "retr" in line]
    assert '    step_buy_label__undo[/"undo: release_label"/]' in lines
    # The after-commit tail hangs behind the commit, in its own group.
    assert "    step_end --> commit" in lines
    assert "    commit --> step_notify_customer" in lines
    assert lines.index('    subgraph after_commit["after commit, best effort"]') < lines.index(
        '    step_notify_customer("notify_customer<br/>best effort, 2.5 s budget")'
    )
    assert "    class step_weigh,step_pad,step_buy_label,step_end critical" in lines
    assert "    class step_notify_customer best_effort" in lines


def test_a_run_is_drawn_over_its_pipeline(shipping):
    run = [
        {"name": "weigh", "status": "ok", "attempts": 1, "duration_ms": 0.25},
        {"name": "pad", "status": "skipped", "attempts": 0, "duration_ms": 0.0},
        {
            "name": "buy_label",
            "status": "failed",
            "attempts": 4,
            "duration_ms": 1250.0,
            "error_code": "service_unavailable",
        },
    ]

    lines = diagrams.flowchart(registry.describe(shipping), run=run).splitlines()

    assert '    step_weigh["weigh<br/>ok · 0.25 ms"]' in lines
    assert (
        '    step_buy_label["buy_label<br/>failed · 1250 ms · 4 attempts<br/>service_unavailable'
        '<br/>retried up to 4 attempts on ServiceUnavailable"]' in lines
    )
    assert "    class step_weigh ok" in lines
    assert "    class step_pad skipped" in lines
    assert "    class step_buy_label failed" in lines
    assert "    class step_end,step_notify_customer not_run" in lines


def test_queued_after_commit_steps_are_drawn_by_their_worker_outcome(shipping):
    description = registry.describe(shipping)
    ran = [{"name": n, "status": "ok", "attempts": 1, "duration_ms": 1.0} for n in ("weigh",)]
    queued = {"name": "notify_customer", "status": "queued", "attempts": 0, "duration_ms": 0.0}
    running = {**queued, "status": "running", "attempts": 2, "error_code": "email_unavailable"}

    when_queued = diagrams.flowchart(description, run=[*ran, queued]).splitlines()
    when_running = diagrams.flowchart(description, run=[*ran, running]).splitlines()

    assert '    step_notify_customer("notify_customer<br/>queued")' in when_queued
    assert "    class step_notify_customer queued" in when_queued
    assert f"    classDef queued {diagrams.CLASS_DEFS['queued']}" in when_queued
    assert (
        '    step_notify_customer("notify_customer<br/>running · 2 attempts<br/>email_unavailable")'
        in when_running
    )
    assert "    class step_notify_customer running" in when_running
    assert f"    classDef running {diagrams.CLASS_DEFS['running']}" in when_running


def test_the_command_prints_mermaid(shipping):
    out = io.StringIO()
    call_command("orchestrators", "--format", "mermaid", stdout=out)

    text = out.getvalue()
    assert "**`create_order`** (`orders.orchestrators.CreateOrder`)" in text
    assert "```mermaid\nflowchart TD\n" in text
    assert "**`ship_parcel`** (`shipping.orchestrators.ShipParcel`)" in text
    assert text.count("```mermaid") == len(registry.registered())


def test_the_docs_copy_is_current_and_a_stale_one_is_reported(tmp_path):
    # The docs draw the example project's pipelines: leave out what test
    # modules registered when they were imported.
    for cls in registry.registered():
        if cls.__module__ != "orders.orchestrators":
            registry.unregister(cls)
    call_command("orchestrators", "--readme", str(EXAMPLE_PAGE), "--check", stdout=io.StringIO())

    stale = tmp_path / "example-project.md"
    stale.write_text(EXAMPLE_PAGE.read_text().replace("step_charge_payment", "step_pay"))
    with pytest.raises(CommandError, match="out of date"):
        call_command("orchestrators", "--readme", str(stale), "--check", stdout=io.StringIO())
    call_command("orchestrators", "--readme", str(stale), stdout=io.StringIO())
    assert stale.read_text() == EXAMPLE_PAGE.read_text()


def test_a_file_without_the_markers_is_an_error(tmp_path):
    plain = tmp_path / "plain.md"
    plain.write_text("# Nothing generated here\n")

    with pytest.raises(CommandError, match="needs the lines"):
        call_command("orchestrators", "--readme", str(plain), stdout=io.StringIO())


def test_the_openapi_description_lists_the_pipeline_and_links_to_its_diagram():
    generator = SchemaGenerator()
    schema = generator.get_schema(request=None, public=True)

    description = schema["paths"]["/api/orders/"]["post"]["description"]
    assert "| 6 | `charge_payment` | critical | retried up to 3 attempts" in description
    # Swagger UI and ReDoc would show Mermaid as its source: the run explorer draws it.
    assert "```mermaid" not in description
    assert (
        f"/admin/orchestration/runrecord/orchestrators/#{CreateOrder.metric_name})" in description
    )
