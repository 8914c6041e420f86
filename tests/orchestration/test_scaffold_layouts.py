"""`manage.py generate` in project layouts other than the example's: no BASE_DIR needed.

`django-admin startproject` (apps beside the settings package, INSTALLED_APPS in
settings.py, a URLconf to extend), apps under src/, and settings split into a
package. The wheel's smoke test (tests/integration/test_wheel.py) runs the
generated code of a real startproject.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import call_command

from orchestration.scaffold.names import ScaffoldError
from orchestration.scaffold.project import find_project

SETTINGS = """INSTALLED_APPS = [
    "django.contrib.auth",
    "orchestration",
]
"""
URLS = """from django.urls import path

urlpatterns = [
    path("health/", lambda request: None),
]
"""


def _write(root: Path, files: dict[str, str]) -> None:
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


def test_a_startproject_layout_lists_apps_in_settings_and_routes_them_in_its_urlconf(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path, {"shop/__init__.py": "", "shop/settings.py": SETTINGS, "shop/urls.py": URLS})
    monkeypatch.chdir(tmp_path)

    project = find_project(settings_module="shop.settings", urlconf="shop.urls")

    assert project.root == tmp_path.resolve()
    assert (project.apps_file, project.apps_list) == ("shop/settings.py", "INSTALLED_APPS")
    assert project.urls_file == "shop/urls.py"


def test_apps_under_src_with_a_settings_package_are_found_from_the_import_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(
        tmp_path / "src",
        {
            "shop/__init__.py": "",
            "shop/settings/__init__.py": "",
            "shop/settings/base.py": SETTINGS,
            "shop/settings/production.py": "from shop.settings.base import *  # noqa\n",
            "shop/urls.py": URLS,
        },
    )
    monkeypatch.chdir(tmp_path)  # manage.py beside src/, as in a src layout
    monkeypatch.syspath_prepend(str(tmp_path / "src"))

    project = find_project(settings_module="shop.settings.production", urlconf="shop.urls")

    assert project.root == (tmp_path / "src").resolve()
    assert project.apps_file == "shop/settings/base.py"
    assert project.urls_file == "shop/urls.py"


def test_a_project_that_mounts_its_listed_apps_itself_keeps_its_urlconf(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(
        tmp_path,
        {
            "site/local_apps.py": 'LOCAL_APPS = [\n    "orchestration",\n]\n',
            "site/settings.py": "from site.local_apps import LOCAL_APPS\n" + SETTINGS,
            "site/urls.py": "from site.local_apps import LOCAL_APPS\n\nurlpatterns = []\n",
        },
    )
    monkeypatch.chdir(tmp_path)

    project = find_project(settings_module="site.settings", urlconf="site.urls")

    assert (project.apps_file, project.apps_list) == ("site/local_apps.py", "LOCAL_APPS")
    assert project.urls_file is None


def test_settings_without_a_literal_list_ask_for_the_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path, {"shop/settings.py": "INSTALLED_APPS = build()\n", "shop/urls.py": URLS})
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ScaffoldError, match="--settings-file"):
        find_project(settings_module="shop.settings", urlconf="shop.urls")


def test_the_flags_point_generate_at_any_layout(tmp_path: Path) -> None:
    _write(tmp_path, {"shop/settings.py": SETTINGS, "shop/urls.py": URLS})
    out = io.StringIO()

    call_command(
        "generate",
        "service",
        "--no-input",
        "--app=ledger",
        "--service=PostEntry",
        "--operations=validate_entry,post_entry",
        f"--root={tmp_path}",
        f"--settings-file={tmp_path / 'shop/settings.py'}",
        f"--urls-file={tmp_path / 'shop/urls.py'}",
        stdout=out,
    )

    settings = (tmp_path / "shop/settings.py").read_text()
    assert settings.endswith('    "orchestration",\n    "ledger",\n]\n')
    urls = (tmp_path / "shop/urls.py").read_text()
    assert 'path("api/", include("ledger.urls")),\n]' in urls
    assert "from django.urls import include" in urls
    assert (tmp_path / "ledger/orchestrators.py").is_file()
    assert "modified  shop/urls.py" in out.getvalue()
