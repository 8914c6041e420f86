"""`manage.py orchestrators`: the registered pipelines, as a table or as JSON."""

from __future__ import annotations

import json
from typing import Any

from django.core.management import BaseCommand, CommandParser

from orchestration import registry
from orchestration.scaffold.listing import describe_all, format_table


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
        descriptions = describe_all(registry.registered())
        if options["format"] == "json":
            self.stdout.write(json.dumps(descriptions, indent=2))
        else:
            self.stdout.write(format_table(descriptions))
