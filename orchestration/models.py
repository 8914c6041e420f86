"""The effect journal: one row per external effect of a journaled step."""

from __future__ import annotations

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
