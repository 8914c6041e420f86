"""Delete run records past their retention, now. The relay already triggers the same purge
every PURGE_EVERY seconds (see orchestration.retention); this is for a one-off, or for a
project that turned that off and schedules the purge itself."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from orchestration.conf import get_config
from orchestration.runs import purge_run_records


class Command(BaseCommand):
    help = (
        "Delete run records older than --days (default: the retention setting, 30 days). "
        "Not needed for routine retention: relay_queued_steps enqueues the purge of expired "
        "run records and finished queued steps every PURGE_EVERY seconds (default hourly)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, help="Keep records this many days.")
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would be deleted; delete nothing."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        days = options["days"] or get_config()["RUN_RECORD_RETENTION_DAYS"]
        if days < 1:
            raise CommandError(f"--days must be at least 1, got {days}.")
        count = purge_run_records(older_than=timedelta(days=days), dry_run=options["dry_run"])
        verb = "Would delete" if options["dry_run"] else "Deleted"
        self.stdout.write(f"{verb} {count} run record(s) older than {days} day(s).")
