"""The app's admin: the run explorer (recorded runs, each drawn over its pipeline, and
every pipeline's recent failure rate per step), the effect journal (what recovery
still has to undo, and what it could not) and the queued after-commit steps (what
ran, what failed, what waits)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from django.contrib import admin
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.db.models import Count, F, FloatField, QuerySet, Sum, Value
from django.db.models.functions import Cast
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html

from orchestration import diagrams, registry
from orchestration.models import EffectRecord, QueuedStep, RunRecord

#: The orchestrators page counts the runs of this many days.
RECENT_DAYS = 7

#: Mermaid (11.17.2, MIT licence: static/orchestration/vendor/mermaid.LICENSE),
#: served from our own static files, never from a CDN.
MERMAID_JS = ("orchestration/vendor/mermaid.min.js", "orchestration/diagrams.js")


def _description(name: str, steps: list[dict[str, Any]]) -> dict[str, Any]:
    """The registry's description of ``name``, or one rebuilt from a record's steps
    when the pipeline is gone or has changed since the run."""
    classes = {cls.metric_name: cls for cls in registry.registered()}
    cls = classes.get(name)
    if cls is not None:
        description = registry.describe(cls)
        if [step["name"] for step in description["steps"]] == [step["name"] for step in steps]:
            return description
    return {
        "name": name,
        "class": "",
        "atomic": True,
        "steps": [
            {"name": step["name"], "critical": step.get("critical", True), "after_commit": False}
            for step in steps
        ],
    }


#: A run record's status for an after-commit step: its row went to the task queue.
QUEUED = "queued"

#: The run page's legend: the diagram's overlay styles (the last two with queued steps only).
LEGEND = ("ok", "failed", "compensated", "skipped", "deferred", "not_run", "queued", "running")

#: The diagram's status for each state of a queued step, once the worker had it.
QUEUED_STATUS: dict[str, str] = {
    QueuedStep.State.QUEUED.value: "queued",
    QueuedStep.State.RUNNING.value: "running",
    QueuedStep.State.DONE.value: "ok",
    QueuedStep.State.FAILED.value: "failed",
}


def queued_steps_of(record: RunRecord) -> dict[str, QueuedStep]:
    """The queued after-commit steps of ``record``'s run, by step name, as they are now.

    Looked up by the run's request id and orchestrator. Should one request have run
    the same orchestrator twice, each record gets the latest rows queued no later
    than it was written (the rows are queued during the run, the record after it).
    """
    names = {step["name"] for step in record.steps if step.get("status") == QUEUED}
    if not names or not record.request_id:
        return {}
    entries = QueuedStep.objects.filter(
        request_id=record.request_id,
        orchestrator=record.orchestrator,
        step__in=names,
        enqueued_at__lte=record.created,
    ).order_by("enqueued_at")
    return {entry.step: entry for entry in entries}


def with_queued_outcomes(record: RunRecord, queued: dict[str, QueuedStep]) -> list[dict[str, Any]]:
    """The record's steps for the diagram, each queued one with its worker's outcome:
    state (ok, failed, queued, running), deliveries and the last error's code."""
    steps = []
    for step in record.steps:
        entry = queued.get(step["name"]) if step.get("status") == QUEUED else None
        if entry is None:
            steps.append(step)
            continue
        duration = 0.0
        if entry.started_at is not None and entry.finished_at is not None:
            duration = (entry.finished_at - entry.started_at).total_seconds() * 1e3
        steps.append(
            {
                **step,
                "status": QUEUED_STATUS.get(entry.state, QUEUED),
                "attempts": entry.attempts,
                "duration_ms": duration,
                "error_code": entry.last_error.split(":", 1)[0] if entry.last_error else None,
            }
        )
    return steps


#: The explorer's pages hide the admin's app list: their tables and diagrams need the width.
WIDE = {"is_nav_sidebar_enabled": False}

#: Request ids and errors longer than this are cut in lists (in full on their own page).
SHORT_ID, SHORT_ERROR = 12, 120


def compact_time(moment: datetime | None) -> str:
    """``2026-12-06 14:03:27`` in the current time zone (a narrow column breaks it between
    the date and the time only), ``-`` for none."""
    if moment is None:
        return "-"
    local = timezone.localtime(moment)
    return format_html(
        '<span class="moment">{}</span> <span class="moment">{}</span>',
        local.strftime("%Y-%m-%d"),
        local.strftime("%H:%M:%S"),
    )


def shortened(text: str, limit: int = SHORT_ID) -> str:
    """``text``, cut to ``limit`` characters with an ellipsis, the whole of it as a tooltip."""
    if len(text) <= limit:
        return text
    return format_html('<span title="{}">{}…</span>', text, text[:limit])


def user_name(record: RunRecord) -> str:
    """Who ran it: the username, ``#id (deleted)`` for a user that is gone, ``-`` for none.

    The user column has no constraint (a record outlives its user), so the row may be gone.
    """
    if record.user_id is None:
        return "-"
    try:
        user = record.user  # None from the list's join, DoesNotExist from a lookup of its own
    except ObjectDoesNotExist:
        user = None
    return f"#{record.user_id} (deleted)" if user is None else user.get_username()


@admin.register(RunRecord)
class RunRecordAdmin(admin.ModelAdmin):
    list_display = (
        "when",
        "orchestrator",
        "outcome_label",
        "failure",
        "duration",
        "user_label",
        "request",
    )
    list_display_links = ("when", "request")
    # A LEFT JOIN: the column has no constraint, so a deleted user's records stay listed.
    list_select_related = ("user",)
    list_filter = (
        "orchestrator",
        "outcome",
        "failing_step",
        "error_code",
        ("created", admin.DateFieldListFilter),
    )
    search_fields = ("=request_id", "=trace_id", "=subject_id")
    date_hierarchy = "created"
    change_list_template = "admin/orchestration/runrecord/change_list.html"

    class Media:
        js = MERMAID_JS

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a record is what happened: view and delete only

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        return super().changelist_view(request, {**WIDE, **(extra_context or {})})

    @admin.display(description="when", ordering="created")
    def when(self, record: RunRecord) -> str:
        return compact_time(record.created)

    @admin.display(description="failing step and error", ordering="failing_step")
    def failure(self, record: RunRecord) -> str:
        if not record.failed:
            return "-"
        return format_html("{}<br><code>{}</code>", record.failing_step, record.error_code)

    @admin.display(description="request id", ordering="request_id")
    def request(self, record: RunRecord) -> str:
        return shortened(record.request_id)

    @admin.display(description="outcome", ordering="outcome")
    def outcome_label(self, record: RunRecord) -> str:
        return format_html(
            '<span class="run-outcome run-outcome-{}">{}</span>', record.outcome, record.outcome
        )

    @admin.display(description="ms", ordering="duration_ms")
    def duration(self, record: RunRecord) -> str:
        return f"{record.duration_ms:.1f}"

    @admin.display(description="user", ordering="user_id")
    def user_label(self, record: RunRecord) -> str:
        return user_name(record)

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.orchestrators_view)
        own = [path("orchestrators/", view, name="orchestration_orchestrators")]
        return own + super().get_urls()

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        record = self.get_object(request, object_id)
        if record is None or not self.has_view_permission(request, record):
            return super().change_view(request, object_id, form_url, extra_context)
        description = _description(record.orchestrator, record.steps)
        queued = queued_steps_of(record)
        queued_rows = [
            {
                "step": step["name"],
                "entry": queued.get(step["name"]),
                "url": None
                if step["name"] not in queued
                else reverse(
                    "admin:orchestration_queuedstep_change", args=[queued[step["name"]].pk]
                ),
            }
            for step in record.steps
            if step.get("status") == QUEUED
        ]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            **WIDE,
            "title": f"Run of {record.orchestrator}",
            "subtitle": record.request_id,
            "record": record,
            "user_name": user_name(record),
            "diagram": diagrams.flowchart(description, run=with_queued_outcomes(record, queued)),
            "queued": queued_rows,
            "media": self.media,
            "has_delete_permission": self.has_delete_permission(request, record),
            "subject_url": self._subject_url(record),
            "legend": [
                (status.replace("_", " "), diagrams.css(diagrams.CLASS_DEFS[status]))
                for status in LEGEND
                if status not in ("queued", "running") or queued_rows
            ],
        }
        return TemplateResponse(request, "admin/orchestration/runrecord/run.html", context)

    @staticmethod
    def _subject_url(record: RunRecord) -> str | None:
        if not record.subject_type:
            return None
        app_label, model = record.subject_type.split(".", 1)
        try:
            return reverse(f"admin:{app_label}_{model}_change", args=[record.subject_id])
        except Exception:  # the model has no admin page
            return None

    def orchestrators_view(self, request: HttpRequest) -> HttpResponse:
        # Per-step failure counts are run records too: the same permission as the list.
        if not self.has_view_permission(request):
            raise PermissionDenied
        since = timezone.now() - timedelta(days=RECENT_DAYS)
        pipelines = []
        for cls in registry.registered():
            description = registry.describe(cls)
            pipelines.append(
                {
                    "description": description,
                    "diagram": diagrams.flowchart(description),
                    **failure_rates(description, since=since),
                }
            )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            **WIDE,
            "title": "Orchestrators",
            "pipelines": pipelines,
            "days": RECENT_DAYS,
            "media": self.media,
        }
        return TemplateResponse(request, "admin/orchestration/orchestrators.html", context)


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


def failure_rates(description: dict[str, Any], *, since: Any) -> dict[str, Any]:
    """Estimated runs since ``since`` and failures per step, from the records (and how
    many records the estimate rests on).

    Successes are sampled, so each record counts for ``1 / sample_rate`` runs;
    critical failures are the records' failing steps, best-effort ones their
    warnings (weighted the same way).
    """
    records: QuerySet[RunRecord] = RunRecord.objects.filter(
        orchestrator=description["name"], created__gte=since
    )
    weight = Cast(Value(1.0), FloatField()) / F("sample_rate")
    runs = records.filter(sample_rate__gt=0).aggregate(runs=Sum(weight))["runs"] or 0.0
    failures: dict[str, float] = defaultdict(float)
    for row in records.filter(outcome="failure").values("failing_step").annotate(n=Count("id")):
        failures[row["failing_step"]] += row["n"]
    for warnings, rate in records.exclude(warnings=[]).values_list("warnings", "sample_rate"):
        for warning in warnings:
            failures[warning["step"]] += 1 / rate if rate else 0.0
    steps = []
    for step in description["steps"]:
        count = failures.get(step["name"], 0.0)
        steps.append(
            {
                "name": step["name"],
                "critical": step["critical"],
                "failures": round(count),
                "rate": None if not runs else 100 * count / runs,
            }
        )
    return {"runs": round(runs), "recorded": records.count(), "steps": steps}


@admin.register(QueuedStep)
class QueuedStepAdmin(admin.ModelAdmin):
    list_display = (
        "queued_at",
        "orchestrator",
        "step",
        "state",
        "attempts",
        "wait_seconds",
        "finished",
        "error",
    )
    list_display_links = ("queued_at",)
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

    class Media:
        css = {"all": ("orchestration/explorer.css",)}

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        return super().changelist_view(request, {**WIDE, **(extra_context or {})})

    @admin.display(description="queued at", ordering="enqueued_at")
    def queued_at(self, entry: QueuedStep) -> str:
        return compact_time(entry.enqueued_at)

    @admin.display(description="finished", ordering="finished_at")
    def finished(self, entry: QueuedStep) -> str:
        return compact_time(entry.finished_at)

    @admin.display(description="last error")
    def error(self, entry: QueuedStep) -> str:
        return shortened(entry.last_error, SHORT_ERROR) if entry.last_error else "-"

    @admin.display(description="time in queue (s)")
    def wait_seconds(self, entry: QueuedStep) -> str:
        wait = entry.time_in_queue
        return "-" if wait is None else f"{wait:.3f}"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: QueuedStep | None = None) -> bool:
        return False
