"""The project the scaffolder writes into: its layout, its apps and which names are free."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from django.apps import apps

from orchestration.scaffold.names import ScaffoldError, app_label
from orchestration.scaffold.plan import Plan
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
