"""The project the scaffolder writes into: its apps, and a plan of changes to its files.

The generators add changes to a ``Plan``; ``Plan.write`` refuses when any file
the plan would create already exists, so a run writes everything or nothing.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from django.apps import apps
from django.template import Context, Engine

from orchestration.scaffold.names import ScaffoldError, app_label
from orchestration.scaffold.sources import (
    append_to_list,
    find_list,
    merge_module,
    parse,
    string_elements,
)

LOCAL_APPS_FILE = "config/local_apps.py"

#: Apps that are part of the framework, never a place for a domain service.
NOT_DOMAIN_APPS = frozenset({"orchestration", "config"})


@dataclass(frozen=True)
class App:
    name: str
    exists: bool

    @property
    def title(self) -> str:
        return self.name.replace("_", " ").capitalize()

    @property
    def config_class(self) -> str:
        return "".join(part.capitalize() for part in self.name.split("_")) + "Config"

    @property
    def url_prefix(self) -> str:
        return self.name.replace("_", "-")


def local_apps(source: str) -> list[str]:
    """The entries of ``LOCAL_APPS`` in ``config/local_apps.py``."""
    tree = parse(source, LOCAL_APPS_FILE)
    return string_elements(find_list(tree.body, "LOCAL_APPS", LOCAL_APPS_FILE), LOCAL_APPS_FILE)


def add_local_app(source: str, name: str) -> str:
    """``config/local_apps.py`` with ``name`` appended to ``LOCAL_APPS``."""
    tree = parse(source, LOCAL_APPS_FILE)
    return append_to_list(source, find_list(tree.body, "LOCAL_APPS", LOCAL_APPS_FILE), f'"{name}"')


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return True


def resolve_app(root: Path, name: str, *, allow_new: bool = True) -> App:
    """An existing local app, or a new one whose name is free in the project and in Python."""
    name = app_label(name)
    if name in NOT_DOMAIN_APPS:
        raise ScaffoldError(f"{name!r} is part of the framework; choose a domain app.")
    local_apps_file = root / LOCAL_APPS_FILE
    if not local_apps_file.is_file():
        raise ScaffoldError(f"{local_apps_file} not found: run the command in the project.")
    if name in local_apps(local_apps_file.read_text(encoding="utf-8")):
        if not (root / name / "__init__.py").is_file():
            raise ScaffoldError(f"{name!r} is listed in {LOCAL_APPS_FILE} but {name}/ is missing.")
        return App(name, exists=True)
    if not allow_new:
        raise ScaffoldError(f"{name!r} is not one of the project's apps ({LOCAL_APPS_FILE}).")
    if (root / name).exists() or (root / f"{name}.py").exists():
        raise ScaffoldError(
            f"{name!r} already exists in the project but is not listed in {LOCAL_APPS_FILE}; "
            "choose another name."
        )
    if name in {config.label for config in apps.get_app_configs()}:
        raise ScaffoldError(f"{name!r} is already the label of an installed app; choose another.")
    if _importable(name):
        raise ScaffoldError(
            f"{name!r} is already an importable module (standard library or installed "
            "package); an app of that name would shadow it. Choose another."
        )
    return App(name, exists=False)


# -- the plan --------------------------------------------------------------------

TEMPLATES = Path(__file__).resolve().parent / "templates"

_engine = Engine(dirs=[str(TEMPLATES)], autoescape=False)


def render(template: str, **context: object) -> str:
    """Render ``templates/<template>.py-tpl``."""
    return _engine.get_template(f"{template}.py-tpl").render(Context(context, autoescape=False))


@dataclass
class Change:
    path: PurePosixPath
    content: str
    original: str | None = None

    @property
    def creates(self) -> bool:
        return self.original is None


@dataclass
class Outcome:
    """What ``Plan.write`` did."""

    written: list[PurePosixPath]
    notes: list[str] = field(default_factory=list)


@dataclass
class Plan:
    root: Path
    changes: dict[PurePosixPath, Change] = field(default_factory=dict)
    clashes: list[str] = field(default_factory=list)
    migrate_app: str | None = None
    next_steps: list[str] = field(default_factory=list)
    reminders: list[str] = field(default_factory=list)

    # -- building --------------------------------------------------------------------

    def read(self, path: str) -> str | None:
        """The file's content as the plan leaves it (None if it does not exist)."""
        key = PurePosixPath(path)
        if key in self.changes:
            return self.changes[key].content
        disk = self.root / key
        return disk.read_text(encoding="utf-8") if disk.is_file() else None

    def exists(self, path: str) -> bool:
        return self.read(path) is not None or (self.root / path).exists()

    def create(self, path: str, content: str) -> None:
        """A new file; a clash if the path exists."""
        if self.exists(path):
            self.clashes.append(f"{path} already exists")
            return
        self.changes[PurePosixPath(path)] = Change(PurePosixPath(path), content)

    def ensure(self, path: str, content: str = "") -> None:
        """A file that is created when missing and left alone otherwise (package markers)."""
        if not self.exists(path):
            self.create(path, content)

    def edit(self, path: str, content: str) -> None:
        """Replace the planned content of an existing (or planned) file."""
        key = PurePosixPath(path)
        if key in self.changes:
            self.changes[key].content = content
        else:
            original = self.read(path)
            if original is None:
                raise ScaffoldError(f"{path} does not exist.")
            self.changes[key] = Change(key, content, original)

    def merge(self, path: str, generated: str) -> None:
        """Create the module, or add its imports and definitions to the existing one."""
        existing = self.read(path)
        if existing is None:
            self.create(path, generated)
            return
        try:
            self.edit(path, merge_module(existing, generated, path))
        except ScaffoldError as exc:
            self.clashes.append(str(exc))

    # -- output ----------------------------------------------------------------------

    def check(self) -> None:
        """Raise unless every change can be made; generated code must at least parse."""
        for change in self.changes.values():
            if change.path.suffix == ".py":
                parse(change.content, str(change.path))
        if self.clashes:
            raise ScaffoldError(
                "Nothing was written; these would be overwritten or are ambiguous:\n  "
                + "\n  ".join(self.clashes)
            )

    def describe(self) -> str:
        """The dry-run report: new files in full, edited files as a diff."""
        self.check()
        parts = []
        for change in self.changes.values():
            if change.creates:
                parts.append(f"--- create {change.path}\n{change.content}")
            else:
                assert change.original is not None  # an edit starts from the file's text
                diff = difflib.unified_diff(
                    change.original.splitlines(keepends=True),
                    change.content.splitlines(keepends=True),
                    f"a/{change.path}",
                    f"b/{change.path}",
                )
                parts.append(f"--- modify {change.path}\n{''.join(diff)}")
        if self.migrate_app:
            parts.append(f"--- then run: python manage.py makemigrations {self.migrate_app}")
        return "\n".join(parts)

    def write(self) -> Outcome:
        """Write every change (after checking them all), tidy imports and layout, migrate."""
        self.check()
        for change in self.changes.values():
            target = self.root / change.path
            if change.creates and target.exists():
                raise ScaffoldError(f"Nothing was written: {change.path} appeared meanwhile.")
        for change in self.changes.values():
            target = self.root / change.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(change.content, encoding="utf-8")
        written = list(self.changes)
        outcome = Outcome(written)
        self._tidy(outcome)
        if self.migrate_app:
            self._make_migrations(outcome)
        return outcome

    def _tidy(self, outcome: Outcome) -> None:
        """Sort imports and format with the project's ruff settings, as `make format` would."""
        files = [str(path) for path in outcome.written if path.suffix == ".py"]
        if not files:
            return
        if importlib.util.find_spec("ruff") is None:
            outcome.notes.append("ruff is not installed: run `ruff check --fix` and `ruff format`.")
            return
        for command in (["check", "--fix", "--select", "I", "--quiet"], ["format", "--quiet"]):
            completed = subprocess.run(
                [sys.executable, "-m", "ruff", *command, *files],
                cwd=self.root,
                capture_output=True,
                text=True,
                check=False,
            )
            if completed.returncode != 0:
                outcome.notes.append(
                    f"ruff {command[0]} reported:\n{completed.stdout}{completed.stderr}"
                )

    def _make_migrations(self, outcome: Outcome) -> None:
        """Run makemigrations in a fresh process: this one cannot load the new app's models."""
        assert self.migrate_app is not None
        migrations = self.root / self.migrate_app / "migrations"
        before = set(migrations.glob("*.py"))
        completed = subprocess.run(
            [sys.executable, "manage.py", "makemigrations", self.migrate_app, "--no-input"],
            cwd=self.root,
            capture_output=True,
            text=True,
            env=os.environ.copy(),
            check=False,
        )
        if completed.returncode != 0:
            outcome.notes.append(
                f"makemigrations {self.migrate_app} failed; fix the cause and run it yourself:\n"
                f"{completed.stdout}{completed.stderr}"
            )
            return
        for path in sorted(set(migrations.glob("*.py")) - before):
            outcome.written.append(PurePosixPath(path.relative_to(self.root).as_posix()))
