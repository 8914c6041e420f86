"""Rows the engine keeps: the effect journal and the after-commit steps queued for workers."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q


class EffectRecord(models.Model):
    """The intent of a journaled step's external call, and how it ended.

    Written before the call, on a connection of its own (PostgreSQL), so that
    it survives the run's process; settled by the run's own transaction, or
    compensated by the run after a failure or by ``recover_effects`` after a
    crash. An entry whose compensation failed stays ``rollback_incomplete``
    and is retried, with backoff, until it succeeds: it is never dropped.
    """

    class State(models.TextChoices):
        PENDING = "pending", "Pending (run in flight or dead)"
        SETTLED = "settled", "Settled (the run committed)"
        ROLLED_BACK = "rolled_back", "Rolled back (the run failed)"
        COMPENSATED = "compensated", "Compensated by recovery (the run died)"
        ROLLBACK_INCOMPLETE = "rollback_incomplete", "Rollback incomplete"

    key = models.CharField(
        max_length=64, unique=True, help_text="The idempotency key the external system received."
    )
    orchestrator = models.CharField(max_length=63)
    step = models.CharField(max_length=63)
    request_id = models.CharField(max_length=64, blank=True)
    #: The run (or recovery pass) that holds the entry: only its holder may settle it.
    owner = models.CharField(max_length=32)
    state = models.CharField(max_length=24, choices=State.choices, default=State.PENDING)
    #: Pending: the holder's lease. Rollback incomplete: when the next attempt is due.
    lease_until = models.DateTimeField()
    attempts = models.PositiveIntegerField(
        default=0, help_text="Compensation attempts that failed."
    )
    last_error = models.TextField(blank=True)
    created = models.DateTimeField()
    updated = models.DateTimeField()

    class Meta:
        ordering = ("-created", "-id")
        verbose_name = "effect journal entry"
        verbose_name_plural = "effect journal"
        indexes = (
            # Recovery and the metrics read only the unsettled entries.
            models.Index(
                fields=("lease_until",),
                name="effect_unsettled_idx",
                condition=Q(state__in=("pending", "rollback_incomplete")),
            ),
            models.Index(fields=("created",), name="effect_created_idx"),
        )

    def __str__(self) -> str:
        return f"{self.orchestrator}.{self.step} {self.key[:12]} ({self.get_state_display()})"


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
