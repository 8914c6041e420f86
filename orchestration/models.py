"""Run records: what happened in one orchestrator run, kept for the admin's run explorer."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


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
