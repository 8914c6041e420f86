"""The app's tables: the effect journal, the run records and the queued after-commit steps."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


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
        COMPENSATING = "compensating", "Compensating (an undo is under way or was interrupted)"
        ROLLED_BACK = "rolled_back", "Rolled back (the run failed)"
        COMPENSATED = "compensated", "Compensated by recovery (the run died)"
        ROLLBACK_INCOMPLETE = "rollback_incomplete", "Rollback incomplete"

    #: Unique by a constraint, not ``unique=True``: on PostgreSQL that would add a second
    #: (``varchar_pattern_ops``) index for LIKE queries, which nothing sends, to every claim.
    key = models.CharField(
        max_length=64, help_text="The idempotency key the external system received."
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
                condition=Q(state__in=("pending", "compensating", "rollback_incomplete")),
            ),
            models.Index(fields=("created",), name="effect_created_idx"),
        )
        constraints = (models.UniqueConstraint(fields=("key",), name="effect_key_unique"),)

    def __str__(self) -> str:
        return f"{self.orchestrator}.{self.step} {self.key[:12]} ({self.get_state_display()})"


class RunRecord(models.Model):
    """One recorded run: every failure, a sample of the successes.

    Written in one INSERT after the run's transaction ended (or on a connection
    of its own), so a failure whose writes were rolled back still leaves its
    record. ``sample_rate`` is the probability with which a run like this one
    was kept (1 for failures): ``1 / sample_rate`` estimates how many runs the
    row stands for, which keeps failure rates honest under sampling.
    """

    class Outcome(models.TextChoices):
        SUCCESS = "success"
        FAILURE = "failure"

    created = models.DateTimeField(default=timezone.now, db_index=True)
    orchestrator = models.CharField(max_length=63)
    request_id = models.CharField(max_length=128, db_index=True)
    # No database constraint: the record is written outside the run's
    # transaction and must outlive the user row (and its rollback).
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    failing_step = models.CharField(max_length=63, blank=True)
    error_code = models.CharField(max_length=63, blank=True)
    error_message = models.TextField(blank=True)
    duration_ms = models.FloatField()
    #: Every step of the pipeline: name, status (``not_run`` past a critical
    #: failure), critical, attempts, duration_ms, error_code, compensation.
    steps = models.JSONField(default=list)
    #: The compensations that ran: step, outcome (ok, failed), error.
    compensations = models.JSONField(default=list)
    #: The best-effort failures: step, code, message.
    warnings = models.JSONField(default=list)
    sample_rate = models.FloatField(default=1.0)
    trace_id = models.CharField(max_length=32, blank=True)
    #: What the run was about, as ``app_label.model`` and primary key (e.g. the order).
    subject_type = models.CharField(max_length=100, blank=True)
    subject_id = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ("-created", "-id")
        indexes = (
            models.Index(fields=("orchestrator", "created"), name="orch_run_orch_created"),
            models.Index(fields=("subject_type", "subject_id"), name="orch_run_subject"),
        )

    def __str__(self) -> str:
        return f"{self.orchestrator} {self.outcome} {self.request_id}"

    @property
    def failed(self) -> bool:
        return self.outcome == self.Outcome.FAILURE


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
            # A run's page looks up its queued steps by the run's request id.
            models.Index(fields=("request_id",), name="queued_step_request_idx"),
            # The periodic purge reads only the finished steps, oldest first.
            models.Index(
                fields=("finished_at",),
                name="queued_step_finished_idx",
                condition=models.Q(state__in=("done", "failed")),
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
