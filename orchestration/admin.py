"""Queued after-commit steps in the admin: what ran, what failed, what waits."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from orchestration.models import QueuedStep


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
