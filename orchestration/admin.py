"""The effect journal in the admin: what recovery still has to undo, and what it could not."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from orchestration.models import EffectRecord


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
