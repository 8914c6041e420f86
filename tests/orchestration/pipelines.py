"""Small pipelines over auth Groups (a real table), shared by the engine tests."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.contrib.auth.models import Group

from orchestration import BaseOrchestrator, OperationContext, Step
from orchestration.testing import isolated_registry


@dataclass(kw_only=True, eq=False)
class GroupsContext(OperationContext):
    names: list[str] = field(default_factory=list)
    trail: list[str] = field(default_factory=list)


def create_group(name: str):
    """An operation that writes one row and notes its name in the trail."""

    def operation(ctx: GroupsContext) -> GroupsContext:
        Group.objects.create(name=name)
        ctx.trail.append(name)
        return ctx

    operation.__name__ = operation.__qualname__ = f"create_{name}"
    return operation


def fail_with(exc: Exception, *, after_writing: str | None = None):
    """An operation that optionally writes a row, then raises ``exc``."""

    def operation(ctx: GroupsContext) -> GroupsContext:
        if after_writing:
            Group.objects.create(name=after_writing)
        raise exc

    return operation


class GroupsOrchestrator(BaseOrchestrator[GroupsContext, list[str], list[str]], abstract=True):
    """Base for test pipelines: the input is a list of names, the result the trail."""

    def initialize_context(self, input: list[str], **kwargs) -> GroupsContext:
        return GroupsContext(names=input, **kwargs)

    def build_result(self, ctx: GroupsContext) -> list[str]:
        return ctx.trail


def groups() -> list[str]:
    return sorted(Group.objects.values_list("name", flat=True))


def make_orchestrator(name: str, steps: list[Step], **attrs) -> type[GroupsOrchestrator]:
    """Define a concrete orchestrator class (as a class statement would), left unregistered."""
    with isolated_registry():
        return type(name, (GroupsOrchestrator,), {"pipeline": steps, **attrs})
