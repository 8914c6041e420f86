"""In the admin: the effect journal (what recovery still has to undo, and what it could
not) and the queued after-commit steps (what ran, what failed, what waits)."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from orchestration.models import EffectRecord, QueuedStep


@admin.register(EffectRecord)
class EffectRecordAdmin(admin.ModelAdmin):
    """Read-only: entries change state through the runs and ``recover_effects`` only."""

    list_display = ("key", "orchestrator", "step", "state", "attempts", "lease_until", "created")
    list_filter = ("state", "orchestrator", "step", ("created", admin.DateFieldListFilter))
    search_fields = ("=key", "=request_id")
    date_hierarchy = "created"

    def get_readonly_fields(
        self, request: HttpRequest, obj: EffectRecord | None = None
    ) -> list[str]:
        return [field.name for field in EffectRecord._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: EffectRecord | None = None) -> bool:
        return False


@admin.register(QueuedStep)
class QueuedStepAdmin(admin.ModelAdmin):
    list_display = (
        "enqueued_at",
        "orchestrator",
        "step",
        "state",
        "attempts",
        "wait_seconds",
        "finished_at",
        "last_error",
    )
    list_filter = ("state", "orchestrator", "step")
    search_fields = ("=id", "=request_id")
    ordering = ("-enqueued_at",)
    readonly_fields = (
        "id",
        "orchestrator",
        "step",
        "module",
        "request_id",
        "payload",
        "state",
        "attempts",
        "dispatches",
        "enqueued_at",
        "next_dispatch_at",
        "started_at",
        "wait_seconds",
        "lease_until",
        "finished_at",
        "last_error",
    )

    @admin.display(description="time in queue (s)")
    def wait_seconds(self, entry: QueuedStep) -> str:
        wait = entry.time_in_queue
        return "-" if wait is None else f"{wait:.3f}"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: QueuedStep | None = None) -> bool:
        return False
