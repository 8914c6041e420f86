"""The app's tasks (Django's Tasks API): queued after-commit steps, and the periodic purge.

``run_queued_step``'s arguments are ``QueuedStep`` ids, those of one run; the
step and its context are read from each row, so any backend of Django's Tasks
API can carry them. ``purge_expired`` takes nothing: the relay enqueues it once per
``PURGE_EVERY`` seconds (see ``orchestration.retention``).
"""

from __future__ import annotations

from orchestration import retention
from orchestration._tasks_compat import task
from orchestration.outbox import fan_out, run_queued


@task()
def run_queued_step(entry_id: str, *others: str) -> str:
    """Claim and run one queued step; returns the outcome (ok, failed, duplicate...).

    A run queues its steps as one task: ``others`` (its other steps) are first
    handed on as tasks of their own, so that each step runs on its own.
    """
    if others:
        fan_out(others)
    return run_queued(entry_id)


@task()
def purge_expired() -> dict[str, int]:
    """Delete the run records and the finished queued steps past their retention;
    returns how many of each went."""
    return retention.purge_expired().as_dict()
