"""The project the scaffolder writes into: its local apps and which names are free."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from django.apps import apps

from orchestration.scaffold.names import ScaffoldError, app_label
from orchestration.scaffold.sources import append_to_list, find_list, parse, string_elements

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
