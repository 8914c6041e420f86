"""The task a worker runs for each queued after-commit step (see ``orchestration.outbox``).

Its one argument is the ``QueuedStep`` id; the step and its context are read
from that row, so any backend of Django's Tasks API can carry it.
"""

from __future__ import annotations

from django_tasks import task

from orchestration.outbox import run_queued


@task()
def run_queued_step(entry_id: str) -> str:
    """Claim and run one queued step; returns the outcome (ok, failed, duplicate...)."""
    return run_queued(entry_id)
