"""`orchestrators`: every registered pipeline, its steps and their flags."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from orchestration import registry
from orchestration.engine import BaseOrchestrator
from orchestration.steps import flag_words

Orchestrator = type[BaseOrchestrator[Any, Any, Any]]


def describe_all(classes: Iterable[Orchestrator]) -> list[dict[str, Any]]:
    """The registry's description of each class (the data `--format json` prints)."""
    return [registry.describe(cls) for cls in classes]


def format_table(descriptions: list[dict[str, Any]]) -> str:
    """One block per orchestrator: name, class, transaction mode, then its numbered steps."""
    if not descriptions:
        return "No orchestrators are registered."
    blocks = []
    for description in descriptions:
        mode = "atomic" if description["atomic"] else "not atomic"
        lines = [f"{description['name']}  {description['class']}  ({mode})"]
        width = max(len(step["name"]) for step in description["steps"])
        for number, step in enumerate(description["steps"], start=1):
            lines.append(f"  {number}. {step['name']:<{width}}  {', '.join(flag_words(step))}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
