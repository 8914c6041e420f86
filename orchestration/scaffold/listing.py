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
    """One block per orchestrator: name, class, transaction mode, then its numbered steps.

    A parallel group is one numbered entry; its steps follow as 2a, 2b, ...
    """
    if not descriptions:
        return "No orchestrators are registered."
    blocks = []
    for description in descriptions:
        mode = "atomic" if description["atomic"] else "not atomic"
        lines = [f"{description['name']}  {description['class']}  ({mode})"]
        rows = list(registry.numbered(description["steps"]))
        width = max(len(label) + len(step["name"]) for label, step in rows)
        for label, step in rows:
            name = f"{label} {step['name']}".ljust(width + 1)
            if step.get("branches"):
                lines.append(f"  {name}  parallel group: {len(step['branches'])} steps at once")
            else:
                lines.append(f"  {name}  {', '.join(flag_words(step))}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
