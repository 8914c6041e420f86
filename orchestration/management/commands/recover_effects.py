"""`manage.py recover_effects`: compensate journaled effects whose run never committed."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from django.core.management import BaseCommand, CommandError, CommandParser

from orchestration.recovery import purge_effects, recover_effects


class Command(BaseCommand):
    help = (
        "Compensate the journaled external effects (payments, ...) of runs that died before "
        "committing, retrying failed compensations with backoff. Run it every minute."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--limit", type=int, default=100, help="Entries to handle per pass (default 100)."
        )
        parser.add_argument(
            "--every",
            type=float,
            metavar="SECONDS",
            help="Keep running, one pass every SECONDS, instead of one pass.",
        )
        parser.add_argument(
            "--purge-days",
            type=float,
            metavar="DAYS",
            help="Also delete settled and compensated entries older than DAYS.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["limit"] < 1:
            raise CommandError("--limit must be at least 1.")
        every = options["every"]
        if every is not None and every <= 0:
            raise CommandError("--every must be a positive number of seconds.")
        purge_days = options["purge_days"]
        if purge_days is not None and purge_days < 0:
            raise CommandError("--purge-days must not be negative.")
        while True:
            report = recover_effects(limit=options["limit"])
            self.stdout.write(
                f"compensated {report.compensated}, failed {report.failed}, "
                f"skipped {report.skipped}"
            )
            if purge_days is not None:
                purged = purge_effects(older_than=timedelta(days=purge_days))
                self.stdout.write(f"purged {purged}")
            if every is None:
                return
            time.sleep(every)
