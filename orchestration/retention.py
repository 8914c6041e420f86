"""Retention: what the app deletes, and the periodic trigger that deletes it.

Two tables grow with traffic and are pruned here:

- run records older than ``RUN_RECORD_RETENTION_DAYS`` (``runs.purge_run_records``);
- queued after-commit steps that finished (``done`` or ``failed``) longer than
  ``QUEUE_RETENTION_DAYS`` ago. A step still ``queued`` or ``running`` is never
  deleted, however old: the relay owes it a delivery.

``purge_expired`` does both. Nothing has to remember to run it: every pass of
``relay_queued_steps`` (``make run`` keeps one running with ``--every 30``)
calls ``purge_if_due``, which enqueues the ``orchestration.tasks.purge_expired``
task at most once per ``PURGE_EVERY`` seconds. The claim is a ``cache.add`` on
one key with that timeout, atomic in the shared cache (the database cache by
default, or Redis), so several relays trigger one purge per interval between
them; with a per-process cache (``locmem``) each relay triggers its own, which
is harmless, only more frequent. ``PURGE_EVERY = 0`` turns the trigger off, for
a project that runs ``purge_run_records`` from its own scheduler instead.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from django.core.cache import cache
from django.db.models import Q
from django.utils import timezone

from orchestration.conf import get_config
from orchestration.models import QueuedStep
from orchestration.runs import purge_run_records

logger = logging.getLogger("orchestration")

#: The cache key whose presence means "a purge was triggered less than PURGE_EVERY ago".
PURGE_CLAIM_KEY = "orchestration:retention:purge-claimed"

#: The states after which a queued step is only history.
FINISHED = (QueuedStep.State.DONE, QueuedStep.State.FAILED)


@dataclass(frozen=True)
class Purged:
    """How many rows one purge deleted."""

    run_records: int
    queued_steps: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def purge_queued_steps(
    *, older_than: timedelta | None = None, now: datetime | None = None, dry_run: bool = False
) -> int:
    """Delete the finished (done, failed) queued steps that finished before
    ``now - older_than`` (default: ``QUEUE_RETENTION_DAYS``); how many (would) go.
    Queued and running steps always stay."""
    if older_than is None:
        older_than = timedelta(days=get_config()["QUEUE_RETENTION_DAYS"])
    cutoff = (now or timezone.now()) - older_than
    stale = QueuedStep.objects.filter(state__in=FINISHED).filter(
        Q(finished_at__lt=cutoff) | Q(finished_at__isnull=True, enqueued_at__lt=cutoff)
    )
    if dry_run:
        return stale.count()
    deleted, _ = stale.delete()
    return deleted


def purge_expired() -> Purged:
    """Delete every expired run record and finished queued step (the retention settings)."""
    return Purged(run_records=purge_run_records(), queued_steps=purge_queued_steps())


def purge_if_due() -> bool:
    """Enqueue the purge task unless one was triggered less than ``PURGE_EVERY`` seconds
    ago (by this process or any other sharing the cache); whether it did.

    Never raises: a cache or task backend that is down costs one skipped purge, not
    the relay's pass. When the enqueue fails the claim is released, so the next pass
    tries again.
    """
    every = get_config()["PURGE_EVERY"]
    if every <= 0:
        return False
    try:
        claimed = cache.add(PURGE_CLAIM_KEY, timezone.now().isoformat(), timeout=every)
    except Exception:
        logger.warning("could not claim the periodic purge", exc_info=True)
        return False
    if not claimed:
        return False
    from orchestration.tasks import purge_expired as purge_task

    try:
        purge_task.enqueue()
    except Exception:
        logger.warning("could not enqueue the periodic purge", exc_info=True)
        try:
            cache.delete(PURGE_CLAIM_KEY)
        except Exception:
            logger.warning("could not release the periodic purge's claim", exc_info=True)
        return False
    return True
