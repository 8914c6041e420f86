"""Every concrete orchestrator class, by metric name.

Commands (``orchestrators``, ``generate_dashboards``) read this registry rather
than parsing source code. Apps' ``orchestrators`` modules are imported when
Django starts (see ``OrchestrationConfig.ready``), so the registry is complete
in any process that ran ``django.setup()``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from string import ascii_lowercase
from typing import TYPE_CHECKING, Any

from orchestration.errors import DefinitionError

if TYPE_CHECKING:
    from orchestration.engine import BaseOrchestrator

_registry: dict[str, type[BaseOrchestrator[Any, Any, Any]]] = {}


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def register(cls: type[BaseOrchestrator[Any, Any, Any]]) -> None:
    """Add a class; a class defined again (module reloaded, test re-run) replaces itself."""
    existing = _registry.get(cls.metric_name)
    if existing is not None and _qualified(existing) != _qualified(cls):
        raise DefinitionError(
            f"{_qualified(cls)}: metric name {cls.metric_name!r} is already used by "
            f"{_qualified(existing)}; set `metric_name` on one of them."
        )
    _registry[cls.metric_name] = cls


def unregister(cls: type[BaseOrchestrator[Any, Any, Any]]) -> None:
    if _registry.get(cls.metric_name) is cls:
        del _registry[cls.metric_name]


def get(name: str) -> type[BaseOrchestrator[Any, Any, Any]] | None:
    """The class registered under metric name ``name``, if any."""
    return _registry.get(name)


def registered() -> list[type[BaseOrchestrator[Any, Any, Any]]]:
    """Registered classes ordered by metric name."""
    return [cls for _, cls in sorted(_registry.items())]


def lookup(metric_name: str) -> type[BaseOrchestrator[Any, Any, Any]] | None:
    """The class registered under ``metric_name``, None if there is none."""
    return _registry.get(metric_name)


@contextmanager
def isolated() -> Iterator[None]:
    """Undo, on exit, every registration made inside the block.

    Classes that tests define stay out of what commands list and dashboards
    show, as models do inside Django's ``isolate_apps``.
    """
    saved = dict(_registry)
    try:
        yield
    finally:
        _registry.clear()
        _registry.update(saved)


def numbered(steps: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Described steps with their numbers: ``("1.", step)``, ...; a parallel group is
    ``("2.", group)`` followed by its steps ``("2a.", step)``, ``("2b.", step)``."""
    for number, step in enumerate(steps, start=1):
        yield f"{number}.", step
        for letter, branch in zip(ascii_lowercase, step.get("branches") or (), strict=False):
            yield f"{number}{letter}.", branch


def describe(cls: type[BaseOrchestrator[Any, Any, Any]]) -> dict[str, Any]:
    """An orchestrator's declaration as plain data."""
    return {
        "name": cls.metric_name,
        "class": _qualified(cls),
        "atomic": cls.atomic,
        "steps": [step.describe() for step in cls.get_pipeline()],
    }
