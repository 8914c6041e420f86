"""Write the Grafana dashboards, provisioning and Prometheus rules into dashboards/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from orchestration import registry
from orchestration.extras import MissingExtra


class Command(BaseCommand):
    help = (
        "Generate one Grafana dashboard per registered orchestrator, an overview, Grafana "
        "provisioning files, Prometheus rules and an example prometheus.yml."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--check",
            action="store_true",
            help="Write nothing; exit non-zero when a file is missing, stale or orphaned.",
        )
        parser.add_argument(
            "--output",
            type=Path,
            default=Path("dashboards"),
            help="Directory to write into (default: dashboards/ in the current directory).",
        )

    def handle(self, *args: Any, check: bool, output: Path, **options: Any) -> None:
        try:
            from orchestration import dashboards
        except MissingExtra as exc:
            raise CommandError(str(exc)) from exc
        files = dashboards.render(registry.describe(cls) for cls in registry.registered())
        if check:
            drift = dashboards.compare(files, output)
            if drift:
                raise CommandError(
                    f"Generated dashboards in {output} are out of date; run "
                    f"`python manage.py generate_dashboards`:\n{drift.describe()}"
                )
            self.stdout.write(f"{len(files)} files in {output} are up to date.")
            return
        drift = dashboards.write(files, output)
        if drift:
            changes = [f"  created: {path}" for path in drift.missing]
            changes += [f"  updated: {path}" for path in drift.stale]
            changes += [f"  removed: {path}" for path in drift.unexpected]
            self.stdout.write(f"Wrote {output}:\n" + "\n".join(changes))
        else:
            self.stdout.write(f"{len(files)} files in {output} are already up to date.")
