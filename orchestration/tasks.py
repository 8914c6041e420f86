"""The app's tasks (Django's Tasks API): queued after-commit steps, and the periodic purge.

``run_queued_step``'s one argument is the ``QueuedStep`` id; the step and its
context are read from that row, so any backend of Django's Tasks API can carry
it. ``purge_expired`` takes nothing: the relay enqueues it once per
``PURGE_EVERY`` seconds (see ``orchestration.retention``).
"""

from __future__ import annotations

from django_tasks import task

from orchestration import retention
from orchestration.outbox import run_queued


@task()
def run_queued_step(entry_id: str) -> str:
    """Claim and run one queued step; returns the outcome (ok, failed, duplicate...)."""
    return run_queued(entry_id)


@task()
def purge_expired() -> dict[str, int]:
    """Delete the run records and the finished queued steps past their retention;
    returns how many of each went."""
    return retention.purge_expired().as_dict()
