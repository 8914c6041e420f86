"""A pipeline with after-commit steps; its context and values are importable, as a
task worker needs them. The orchestrator is defined by ``define_note_orchestrator``
inside each test (the registry is isolated per test)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import Group

from orchestration import BaseOrchestrator, OperationContext, ServiceUnavailable, Step

#: What the after-commit operations saw, in this process.
SEEN: list[dict[str, Any]] = []


@dataclass(frozen=True)
class Line:
    sku: str
    price: Decimal


@dataclass(kw_only=True, eq=False)
class NoteContext(OperationContext):
    names: list[str]
    group: Group | None = None
    lines: tuple[Line, ...] = ()
    scratch: list[str] = field(default_factory=list)


def create_group(ctx: NoteContext) -> NoteContext:
    ctx.group = Group.objects.create(name=ctx.names[0])
    ctx.lines = (Line("kb", Decimal("9.99")),)
    ctx.scratch.append("not carried")
    return ctx


def note(ctx: NoteContext) -> NoteContext:
    SEEN.append(
        {
            "group": ctx.group.name if ctx.group else None,
            "lines": ctx.lines,
            "scratch": ctx.scratch,
            "has_names": hasattr(ctx, "names"),
            "request_id": ctx.request_id,
            "dedupe_key": ctx.metadata.get("dedupe_key"),
        }
    )
    return ctx


def mail_down(ctx: NoteContext) -> NoteContext:
    raise ServiceUnavailable("mail down", code="email_unavailable")


def define_note_orchestrator() -> type[BaseOrchestrator[NoteContext, str, list[str]]]:
    class NoteOrchestrator(BaseOrchestrator[NoteContext, str, list[str]]):
        metric_name = "outbox_notes"
        pipeline = (
            Step("create", create_group),
            Step("note", note, critical=False, after_commit=True, uses=("group", "lines")),
            Step(
                "mail", mail_down, critical=False, after_commit=True, when=lambda ctx: ctx.names[1:]
            ),
        )

        def initialize_context(self, input: list[str], **kwargs: Any) -> NoteContext:
            return NoteContext(names=input, **kwargs)

        def build_result(self, ctx: NoteContext) -> str:
            return ctx.group.name if ctx.group else ""

    return NoteOrchestrator
