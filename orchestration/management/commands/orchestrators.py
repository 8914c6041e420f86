"""`manage.py orchestrators`: the registered pipelines, as a table, JSON or Mermaid."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management import BaseCommand, CommandError, CommandParser

from orchestration import diagrams, registry
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
    help = (
        "List every registered orchestrator with its steps and their flags, or draw each "
        "as a Mermaid flowchart; --readme keeps a Markdown file's generated diagrams current."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--format",
            choices=("table", "json", "mermaid"),
            default="table",
            help="table (default), json (the registry's description of each orchestrator) "
            "or mermaid (a flowchart per orchestrator, in Markdown).",
        )
        parser.add_argument(
            "--readme",
            type=Path,
            help="Write the Mermaid diagrams into this Markdown file, between the lines "
            f"{diagrams.BEGIN_MARKER!r} and {diagrams.END_MARKER!r}.",
        )
        parser.add_argument(
            "--check",
            action="store_true",
            help="With --readme: write nothing; exit non-zero when the diagrams are stale.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        descriptions = [registry.describe(cls) for cls in registry.registered()]
        readme: Path | None = options["readme"]
        if readme is not None:
            self._update(readme, diagrams.markdown(descriptions), check=options["check"])
        elif options["check"]:
            raise CommandError("--check needs --readme FILE.")
        elif options["format"] == "json":
            self.stdout.write(json.dumps(descriptions, indent=2))
        elif options["format"] == "mermaid":
            self.stdout.write(diagrams.markdown(descriptions), ending="")
        else:
            self.stdout.write(format_table(descriptions))

    def _update(self, path: Path, block: str, *, check: bool) -> None:
        try:
            current = path.read_text()
            updated = diagrams.replace_generated_block(current, block)
        except (OSError, ValueError) as exc:
            raise CommandError(f"{path}: {exc}") from exc
        if updated == current:
            self.stdout.write(f"The diagrams in {path} are up to date.")
        elif check:
            raise CommandError(
                f"The diagrams in {path} are out of date; run "
                f"`python manage.py orchestrators --readme {path}`."
            )
        else:
            path.write_text(updated)
            self.stdout.write(f"Updated the diagrams in {path}.")
