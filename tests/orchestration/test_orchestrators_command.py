"""`manage.py orchestrators`: the registry, as a table and as JSON."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from django.core.management import call_command

from orchestration import (
    BaseOrchestrator,
    OperationContext,
    Retry,
    Step,
    registry,
)


def _noop(ctx: OperationContext) -> OperationContext:
    return ctx


def _always(ctx: OperationContext) -> bool:
    return True


@pytest.fixture
def shipping() -> type[BaseOrchestrator[Any, Any, Any]]:
    """An orchestrator that looks like a domain app's."""

    class ShipParcel(BaseOrchestrator[OperationContext, None, None]):
        __module__ = "shipping.orchestrators"
        __qualname__ = "ShipParcel"
        atomic = False
        pipeline = (
            Step("weigh", _noop),
            Step("buy_label", _noop, retry=Retry(attempts=4), compensate=_noop),
            Step("notify_customer", _noop, critical=False, after_commit=True, timeout=2.5),
            Step("track", _noop, critical=False, when=_always),
        )

    return ShipParcel


def _run(*args: str) -> str:
    out = io.StringIO()
    call_command("orchestrators", *args, stdout=out)
    return out.getvalue()


def test_the_table_lists_each_step_with_its_flags(shipping: type) -> None:
    output = _run()

    block = output[output.index("ship_parcel  shipping.orchestrators.ShipParcel  (not atomic)") :]
    lines = block.splitlines()[1:5]
    assert [line.split()[:2] for line in lines] == [
        ["1.", "weigh"],
        ["2.", "buy_label"],
        ["3.", "notify_customer"],
        ["4.", "track"],
    ]
    assert lines[0].endswith("critical")
    assert lines[1].endswith(
        "critical, retried up to 4 attempts on ServiceUnavailable, compensated on later failure"
    )
    assert lines[2].endswith("best effort, after commit, 2.5 s budget")
    assert lines[3].endswith("best effort, conditional")


def test_json_is_the_registry_description_of_every_orchestrator(shipping: type) -> None:
    listed = json.loads(_run("--format", "json"))

    assert [entry["name"] for entry in listed] == [cls.metric_name for cls in registry.registered()]
    assert registry.describe(shipping) in listed


def test_an_empty_registry_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "registered", list)

    assert _run().strip() == "No orchestrators are registered."
    assert json.loads(_run("--format", "json")) == []
