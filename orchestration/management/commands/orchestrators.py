"""`manage.py orchestrators`: the registered pipelines, as a table or as JSON."""

from __future__ import annotations

import json
from typing import Any

from django.core.management import BaseCommand, CommandParser

from orchestration import registry
from orchestration.steps import flag_words


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


class Command(BaseCommand):
    help = "List every registered orchestrator with its steps and their flags."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--format",
            choices=("table", "json"),
            default="table",
            help="table (default) or json (the registry's description of each orchestrator).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        descriptions = [registry.describe(cls) for cls in registry.registered()]
        if options["format"] == "json":
            self.stdout.write(json.dumps(descriptions, indent=2))
        else:
            self.stdout.write(format_table(descriptions))
