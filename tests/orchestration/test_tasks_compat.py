"""Django's Tasks framework as the app uses it: ``django.tasks`` on Django 6, the
``django-tasks`` backport on 5.2, chosen in ``orchestration._tasks_compat`` alone."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import django
import pytest

from orchestration import _tasks_compat
from orchestration.models import QueuedStep
from tests.orchestration.outbox_pipelines import SEEN, define_note_orchestrator

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "orchestration"
TASK_MODULES = ("django_tasks", "django.tasks")
ON_DJANGO_6 = django.VERSION >= (6, 0)


def _imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def test_only_the_compat_module_imports_a_tasks_framework():
    importers = {
        str(path.relative_to(ROOT))
        for path in APP.rglob("*.py")
        if any(
            module == name or module.startswith(f"{name}.")
            for module in _imported_modules(path)
            for name in TASK_MODULES
        )
    }

    assert importers == {"orchestration/_tasks_compat.py"}


def test_the_framework_is_djangos_own_from_django_6():
    from orchestration.tasks import run_queued_step

    assert _tasks_compat.BUILT_IN is ON_DJANGO_6
    expected = "django.tasks" if ON_DJANGO_6 else "django_tasks"
    assert expected == _tasks_compat.PACKAGE
    assert type(run_queued_step).__module__ == f"{expected}.base"
    assert _tasks_compat.IMMEDIATE_BACKEND.startswith(f"{expected}.backends.")


@pytest.mark.django_db(transaction=True)
def test_an_after_commit_step_runs_on_the_built_in_immediate_backend(settings):
    settings.TASKS = {"default": {"BACKEND": _tasks_compat.IMMEDIATE_BACKEND}}
    from orchestration.tasks import run_queued_step

    backend = run_queued_step.get_backend()
    SEEN.clear()

    result = define_note_orchestrator()().execute(["a"])

    assert type(backend).__module__.startswith(_tasks_compat.PACKAGE)
    assert result.queued == ["note"]
    assert [seen["group"] for seen in SEEN] == ["a"]
    assert QueuedStep.objects.get().state == "done"


#: A process of the example project with the app's modules and every URL loaded: which
#: tasks framework did it import?
_PROCESS = """
import json, sys
import django
django.setup()
from django.urls import get_resolver
import orchestration.admin, orchestration.outbox, orchestration.retention
from orchestration.tasks import run_queued_step

get_resolver().url_patterns
backend = run_queued_step.get_backend()
print(json.dumps({
    "backend": f"{type(backend).__module__}.{type(backend).__qualname__}",
    "backport_imported": "django_tasks" in sys.modules,
}))
"""


def test_on_django_6_the_example_project_never_imports_the_backport():
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_DEBUG": "1",
        "TASKS_BACKEND": "database",
        "DJANGO_ENV_FILE": "",
    }
    completed = subprocess.run(
        [sys.executable, "-c", _PROCESS],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout.splitlines()[-1])

    assert report["backend"] == "django_tasks_db.backend.DatabaseBackend"
    # On 5.2 the backport is the framework; on 6.x it may be installed but is never loaded.
    assert report["backport_imported"] is not ON_DJANGO_6


# -- the outbox's task row, written by hand in the run's last statement -----------------

#: What may differ between two rows of the same task: their id and when each was written.
_OWN = {"id", "enqueued_at"}


@pytest.mark.django_db(transaction=True)
def test_the_hand_written_task_row_is_the_row_the_backends_enqueue_writes():
    from django.db import connection
    from django_tasks_db.models import DBTaskResult

    from orchestration import batch, outbox
    from orchestration.tasks import run_queued_step

    ids = ["11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"]
    public = run_queued_step.enqueue(*ids)
    by_hand = outbox._task_row(ids)
    batch.send([batch.insert([by_hand], using=connection.alias)], using=connection.alias)

    written, enqueued = (
        DBTaskResult.objects.get(pk=by_hand.pk),
        DBTaskResult.objects.get(pk=public.id),
    )
    fields = [field.attname for field in DBTaskResult._meta.concrete_fields]
    assert {name: getattr(written, name) for name in fields if name not in _OWN} == {
        name: getattr(enqueued, name) for name in fields if name not in _OWN
    }
    assert written.pk != enqueued.pk
    # Read back, it is a task result of the framework in use, like the one enqueue returned.
    assert type(written.task_result) is type(public)
    assert written.task_result.args == list(ids)
    assert type(written.task_result.task) is type(run_queued_step)


def test_the_task_row_check_names_a_release_it_does_not_know(monkeypatch):
    from orchestration import checks, outbox

    assert checks.check_task_rows() == []  # the release installed here is known

    class Release:
        @staticmethod
        def version(name: str) -> str:
            assert name == "django-tasks-db"
            return "0.14.0"

    monkeypatch.setattr(outbox, "metadata", Release)
    monkeypatch.setattr(outbox, "TASK_ROW_COLUMNS", outbox.TASK_ROW_COLUMNS - {"priority"})

    errors = checks.check_task_rows()

    assert [error.id for error in errors] == ["orchestration.E009"] * 2
    assert "django-tasks-db 0.14.0 is installed" in errors[0].msg
    assert "priority" in errors[1].msg


def test_the_task_row_check_is_silent_on_a_backend_without_rows(settings, monkeypatch):
    from orchestration import checks, outbox

    settings.TASKS = {"default": {"BACKEND": _tasks_compat.IMMEDIATE_BACKEND}}
    monkeypatch.setattr(outbox, "TASK_ROW_COLUMNS", frozenset())

    assert checks.check_task_rows() == []
