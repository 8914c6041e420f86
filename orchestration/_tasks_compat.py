"""Django's Tasks framework: built in from Django 6.0 (``django.tasks``), from the
``django-tasks`` backport on Django 5.2.

The app's only import of either: every other module takes ``task``,
``task_backends`` and ``task_enqueued`` from here, so on Django 6 nothing of the
app touches the backport (which may still be installed, as a dependency of
another package).
"""

from __future__ import annotations

import django

#: Django has the Tasks framework built in: ``django.tasks`` is used, never the backport.
BUILT_IN = django.VERSION >= (6, 0)

if BUILT_IN:
    from django.tasks import task, task_backends
    from django.tasks.signals import task_enqueued

    #: The dotted path of the backend named in ``TASKS`` (settings, tests).
    PACKAGE = "django.tasks"
else:
    from django_tasks import (  # type: ignore[assignment,no-redef,unused-ignore]
        task,
        task_backends,
    )
    from django_tasks.signals import (  # type: ignore[assignment,no-redef,unused-ignore]
        task_enqueued,
    )

    PACKAGE = "django_tasks"

#: The built-in backends, as ``TASKS`` names them on this Django.
IMMEDIATE_BACKEND = f"{PACKAGE}.backends.immediate.ImmediateBackend"
DUMMY_BACKEND = f"{PACKAGE}.backends.dummy.DummyBackend"

__all__ = [
    "BUILT_IN",
    "DUMMY_BACKEND",
    "IMMEDIATE_BACKEND",
    "PACKAGE",
    "task",
    "task_backends",
    "task_enqueued",
]
