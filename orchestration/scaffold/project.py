"""The project the scaffolder writes into: its layout, its apps, and a plan of changes to its files.

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

#: The lists of apps the scaffolder adds to, in order of preference: a project
#: that keeps its own apps apart (``LOCAL_APPS``) gets new apps there.
APP_LISTS = ("LOCAL_APPS", "INSTALLED_APPS")

#: Apps that are part of the framework, never a place for a domain service.
NOT_DOMAIN_APPS = frozenset({"orchestration"})


@dataclass(frozen=True)
class Project:
    """Where the scaffolder writes: the apps' directory and the modules that list and route apps.

    Paths are POSIX paths relative to ``root``. ``urls_file`` is None when the
    project mounts every listed app's ``urls`` itself (its URLconf reads the list).
    """

    root: Path
    apps_file: str
    apps_list: str
    urls_file: str | None
    settings_package: str

    def read(self, relative: str) -> str:
        return (self.root / relative).read_text(encoding="utf-8")


def _module_file(root: Path, dotted: str) -> Path:
    """``a/b.py``, or ``a/b/__init__.py`` for a package, under ``root``."""
    base = root.joinpath(*dotted.split("."))
    package = base / "__init__.py"
    return package if package.is_file() else base.with_suffix(".py")


def default_root(settings_module: str) -> Path:
    """The current directory when it holds the settings package (where ``manage.py`` runs),
    else the directory the settings package is imported from (``src/``, for example)."""
    top = settings_module.split(".")[0]
    if (Path.cwd() / top).is_dir():
        return Path.cwd()
    spec = importlib.util.find_spec(top)
    if spec is None or not spec.submodule_search_locations:
        raise ScaffoldError(
            f"Cannot locate the settings package {top!r}; pass --root (the directory of the apps)."
        )
    return Path(next(iter(spec.submodule_search_locations))).parent


def _app_list(path: Path) -> str | None:
    """Which of ``APP_LISTS`` the module at ``path`` assigns a literal list to, if any."""
    if not path.is_file():
        return None
    tree = parse(path.read_text(encoding="utf-8"), str(path))
    for name in APP_LISTS:
        try:
            find_list(tree.body, name, str(path))
        except ScaffoldError:
            continue
        return name
    return None


def _find_apps_file(root: Path, settings_module: str) -> tuple[Path, str]:
    """The settings module, or a module beside it (a settings package), that lists the apps."""
    settings_file = _module_file(root, settings_module)
    candidates = [settings_file, *sorted(settings_file.parent.glob("*.py"))]
    found = {path: _app_list(path) for path in candidates}
    for name in APP_LISTS:
        for path, listed in found.items():
            if listed == name:
                return path, name
    raise ScaffoldError(
        f"No literal LOCAL_APPS or INSTALLED_APPS list in {settings_file} or beside it; "
        "pass --settings-file (the module that lists the apps)."
    )


def find_project(
    *,
    settings_module: str,
    urlconf: str,
    root: Path | None = None,
    settings_file: Path | None = None,
    urls_file: Path | None = None,
) -> Project:
    """The project's layout, from the settings module's name and the flags that override it."""
    root = (root or default_root(settings_module)).resolve()
    if settings_file is None:
        apps_path, apps_list = _find_apps_file(root, settings_module)
    else:
        apps_path = settings_file.resolve()
        listed = _app_list(apps_path)
        if listed is None:
            raise ScaffoldError(f"{settings_file}: no literal LOCAL_APPS or INSTALLED_APPS list.")
        apps_path, apps_list = apps_path, listed
    urls_path = (urls_file or _module_file(root, urlconf)).resolve()
    if not urls_path.is_file():
        raise ScaffoldError(f"{urls_path} not found; pass --urls-file (the root URLconf).")
    mounts_listed_apps = apps_list in urls_path.read_text(encoding="utf-8")
    return Project(
        root=root,
        apps_file=Path(os.path.relpath(apps_path, root)).as_posix(),
        apps_list=apps_list,
        urls_file=None if mounts_listed_apps else Path(os.path.relpath(urls_path, root)).as_posix(),
        settings_package=settings_module.split(".")[0],
    )


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


def listed_apps(project: Project, source: str) -> list[str]:
    """The entries of the project's list of apps."""
    tree = parse(source, project.apps_file)
    node = find_list(tree.body, project.apps_list, project.apps_file)
    return string_elements(node, project.apps_file)


def register_app(plan: Plan, project: Project, name: str) -> None:
    """Plan adding ``name`` to the project's list of apps, and its URLs to the root URLconf."""
    source = plan.read(project.apps_file) or ""
    node = find_list(parse(source, project.apps_file).body, project.apps_list, project.apps_file)
    plan.edit(project.apps_file, append_to_list(source, node, f'"{name}"'))
    if project.urls_file is None:
        return
    urls = plan.read(project.urls_file) or ""
    if f'"{name}.urls"' in urls:
        return
    urls = merge_module(urls, "from django.urls import include, path\n", project.urls_file)
    patterns = find_list(parse(urls, project.urls_file).body, "urlpatterns", project.urls_file)
    plan.edit(
        project.urls_file, append_to_list(urls, patterns, f'path("api/", include("{name}.urls"))')
    )


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return True


def resolve_app(project: Project, name: str, *, allow_new: bool = True) -> App:
    """An existing local app, or a new one whose name is free in the project and in Python."""
    name = app_label(name)
    if name in NOT_DOMAIN_APPS or name == project.settings_package:
        raise ScaffoldError(f"{name!r} is part of the framework; choose a domain app.")
    root, listing = project.root, project.apps_file
    if name in listed_apps(project, project.read(listing)):
        if not (root / name / "__init__.py").is_file():
            raise ScaffoldError(f"{name!r} is listed in {listing} but {name}/ is missing.")
        return App(name, exists=True)
    if not allow_new:
        raise ScaffoldError(f"{name!r} is not one of the project's apps ({listing}).")
    if (root / name).exists() or (root / f"{name}.py").exists():
        raise ScaffoldError(
            f"{name!r} already exists in the project but is not listed in {listing}; "
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
