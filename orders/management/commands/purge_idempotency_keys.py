from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from orders.idempotency import purge_records


class Command(BaseCommand):
    help = "Delete stored Idempotency-Key records older than --days (run it daily, e.g. cron)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days",
            type=int,
            default=7,
            help="Keep records this many days (default 7): clients may retry within it.",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would be deleted; delete nothing."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        days = options["days"]
        if days < 1:
            raise CommandError(f"--days must be at least 1, got {days}.")
        count = purge_records(older_than=timedelta(days=days), dry_run=options["dry_run"])
        verb = "Would delete" if options["dry_run"] else "Deleted"
        self.stdout.write(f"{verb} {count} idempotency record(s) older than {days} day(s).")
