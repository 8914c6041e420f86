"""Dispatch again the after-commit steps whose task may be lost (see orchestration.outbox),
and trigger the periodic purge of expired run records and finished queued steps (see
orchestration.retention)."""

from __future__ import annotations

import signal
import time
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from orchestration.outbox import relay
from orchestration.retention import purge_if_due


class Command(BaseCommand):
    help = (
        "Dispatch again queued after-commit steps that are still queued past their relay "
        "time, or whose worker's lease expired. Runs once, or every --every seconds. "
        "Each pass also enqueues the purge of expired run records and finished queued "
        "steps, at most once per PURGE_EVERY seconds (default 3600) across every relay "
        "sharing the cache; --no-purge leaves that to another scheduler."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--every",
            type=float,
            default=0.0,
            help="Keep running, one pass every SECONDS (default: one pass, then exit).",
        )
        parser.add_argument(
            "--no-purge",
            action="store_true",
            help="Never trigger the periodic purge of expired run records and queued steps.",
        )

    def handle(self, *args: Any, every: float, **options: Any) -> None:
        if every < 0:
            raise CommandError("--every must not be negative.")
        self.running = True
        if every:
            signal.signal(signal.SIGTERM, self._stop)
            signal.signal(signal.SIGINT, self._stop)
        while True:
            count = relay()
            if count or options["verbosity"] > 1:
                self.stdout.write(f"dispatched {count} queued step(s) again")
            if not options["no_purge"] and purge_if_due():
                self.stdout.write("enqueued the purge of expired run records and queued steps")
            if not every or not self.running:
                return
            deadline = time.monotonic() + every
            while self.running and time.monotonic() < deadline:
                time.sleep(min(0.2, every))
            if not self.running:
                return

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self.running = False
