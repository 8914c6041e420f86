"""Rows the engine keeps: after-commit steps queued for a task worker."""

from __future__ import annotations

import uuid

from django.db import models


class QueuedStep(models.Model):
    """One after-commit step of one committed run: the transactional outbox.

    The row is written in the run's own transaction, so it exists exactly when
    the run's data does. Its id is the dedupe key: a worker runs the step only
    after claiming the row (``queued`` -> ``running``), so a redelivered task
    for a step that already ran does nothing. ``lease_until`` bounds a claim: a
    worker that died mid-step leaves a lease that expires, and the relay hands
    the step to another worker.
    """

    class State(models.TextChoices):
        QUEUED = "queued", "queued"
        RUNNING = "running", "running"
        DONE = "done", "done"
        FAILED = "failed", "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    orchestrator = models.CharField(max_length=63)
    step = models.CharField(max_length=63)
    #: The module that defines the orchestrator, imported by a worker that has not yet.
    module = models.CharField(max_length=255)
    request_id = models.CharField(max_length=64, blank=True)
    payload = models.JSONField(help_text="The context fields the step uses, encoded.")
    state = models.CharField(max_length=8, choices=State.choices, default=State.QUEUED)
    attempts = models.PositiveIntegerField(
        default=0, help_text="Deliveries that claimed the step (retries inside one excluded)."
    )
    dispatches = models.PositiveIntegerField(
        default=0, help_text="Times the relay handed the step to the task backend again."
    )
    enqueued_at = models.DateTimeField()
    next_dispatch_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the relay dispatches the step (again) if it is still queued; empty "
        "when the task was stored in the same transaction as the step.",
    )
    started_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ("-enqueued_at",)
        indexes = (
            models.Index(
                fields=("next_dispatch_at",),
                name="queued_step_due_idx",
                condition=models.Q(state__in=("queued", "running")),
            ),
        )

    def __str__(self) -> str:
        return f"{self.orchestrator}.{self.step} ({self.state})"

    @property
    def time_in_queue(self) -> float | None:
        """Seconds from the commit to the first claim by a worker."""
        if self.started_at is None:
            return None
        return (self.started_at - self.enqueued_at).total_seconds()
