"""Recovery of journaled effects whose run never committed.

``recover_effects()`` is a plain function: ``manage.py recover_effects`` calls
it (from cron, a systemd timer, or in a loop with ``--every``) and so can a
periodic task. It is safe to run in several processes at once: each entry is
taken over with a compare-and-set on its holder before its compensation runs.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import DEFAULT_DB_ALIAS
from django.utils import timezone

from orchestration import journal, registry
from orchestration.models import EffectRecord
from orchestration.steps import Step

logger = logging.getLogger("orchestration.recovery")


@dataclass(slots=True)
class RecoveryReport:
    """What one pass did: entries compensated, still failing, or taken by another pass."""

    compensated: int = 0
    failed: int = 0
    skipped: int = 0


def find_step(orchestrator: str, step: str) -> Step[Any] | None:
    """The journaled step ``step`` of the orchestrator registered as ``orchestrator``."""
    cls = registry.lookup(orchestrator)
    for declared in () if cls is None else cls.get_pipeline():
        if declared.name == step and declared.recover is not None:
            return declared
    return None


def recover_effects(
    *, limit: int = 100, now: datetime | None = None, using: str = DEFAULT_DB_ALIAS
) -> RecoveryReport:
    """Compensate up to ``limit`` unsettled entries whose lease or backoff has expired.

    A pending entry past its lease belongs to a run that died before it
    committed (or rolled back); a compensating one, to an undo that was
    interrupted or never recorded as done. The entry is taken over (and made
    ``compensating``), then its step's ``recover(effect)`` runs; on success
    the entry is ``compensated``, on failure ``rollback_incomplete`` with the
    next attempt after an exponential backoff. Entries are never dropped.
    """
    now = now or timezone.now()
    entries = EffectRecord.objects.using(using)
    due = list(
        entries.filter(state__in=journal.UNSETTLED, lease_until__lt=now).order_by("lease_until")[
            :limit
        ]
    )
    report = RecoveryReport()
    for entry in due:
        token = uuid.uuid4().hex
        taken = entries.filter(
            pk=entry.pk, owner=entry.owner, state=entry.state, lease_until=entry.lease_until
        ).update(
            # Rule 2 of the journal: out of pending, durably, before the undo.
            owner=token,
            state=journal.COMPENSATING,
            lease_until=timezone.now() + journal.lease(),
            updated=timezone.now(),
        )
        if not taken:
            report.skipped += 1
            continue
        effect = journal.Effect(
            key=entry.key,
            orchestrator=entry.orchestrator,
            step=entry.step,
            request_id=entry.request_id,
            attempts=entry.attempts,
        )
        mine = entries.filter(pk=entry.pk, owner=token)
        try:
            step = find_step(entry.orchestrator, entry.step)
            if step is None or step.recover is None:
                raise LookupError(
                    f"no registered orchestrator {entry.orchestrator!r} has a journaled "
                    f"step {entry.step!r}"
                )
            step.recover(effect)
        except Exception as exc:
            attempts = entry.attempts + 1
            logger.error(
                "compensation of %s.%s (key %s) failed, attempt %d; retrying later",
                entry.orchestrator,
                entry.step,
                entry.key,
                attempts,
                exc_info=(type(exc), exc, exc.__traceback__),
                extra={"request_id": entry.request_id},
            )
            mine.update(
                state=journal.ROLLBACK_INCOMPLETE,
                attempts=attempts,
                last_error=f"{type(exc).__name__}: {exc}"[:2000],
                lease_until=timezone.now() + journal.retry_delay(attempts),
                updated=timezone.now(),
            )
            report.failed += 1
        else:
            logger.warning(
                "compensated %s.%s (key %s) of a run that never committed",
                entry.orchestrator,
                entry.step,
                entry.key,
                extra={"request_id": entry.request_id},
            )
            mine.update(state=journal.COMPENSATED, last_error="", updated=timezone.now())
            report.compensated += 1
    return report


def purge_effects(
    *, older_than: timedelta, dry_run: bool = False, using: str = DEFAULT_DB_ALIAS
) -> int:
    """Delete settled, rolled back and compensated entries created more than ``older_than`` ago.

    Unsettled entries are never purged. Keep entries at least as long as
    clients may retry a request with the same key.
    """
    done = EffectRecord.objects.using(using).filter(
        state__in=(journal.SETTLED, journal.ROLLED_BACK, journal.COMPENSATED),
        created__lt=timezone.now() - older_than,
    )
    if dry_run:
        return done.count()
    deleted, _ = done.delete()
    return deleted
