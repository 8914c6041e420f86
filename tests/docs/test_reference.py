"""The generated tables of the documentation (docs/reference.py) are current, and a stale one
is reported and rewritten."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.docs.blocks import DOCS


@pytest.fixture(scope="module")
def reference() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_reference", DOCS / "reference.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module through sys.modules
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_the_generated_pages_are_current(reference):
    stale = reference.stale_pages()
    assert stale == [], "run python docs/reference.py"


def test_a_stale_page_is_reported_and_rewritten(reference, tmp_path: Path, monkeypatch):
    for name in ("settings.md", "checks.md"):
        shutil.copy(DOCS / name, tmp_path / name)
    settings_page = tmp_path / "settings.md"
    settings_page.write_text(settings_page.read_text().replace("| `PURGE_EVERY` |", "| `PURGE` |"))
    monkeypatch.setattr(reference, "DOCS", tmp_path)

    assert reference.stale_pages() == [settings_page]
    assert reference.write() == [settings_page]
    assert settings_page.read_text() == (DOCS / "settings.md").read_text()


def test_a_setting_without_a_meaning_is_an_error(reference, monkeypatch):
    monkeypatch.delitem(reference.SETTING_MEANINGS, "PURGE_EVERY")

    with pytest.raises(SystemExit, match="PURGE_EVERY"):
        reference.settings_table()


def test_every_check_of_the_app_is_found(reference):
    found = {check.id: check for check in reference.app_checks()}

    assert set(found) == set(reference.CHECK_MEANINGS)
    assert found["orchestration.W002"].deploy
    assert (found["orchestration.E001"].level, found["orchestration.E001"].deploy) == (
        "error",
        False,
    )
