"""Settings defaults (``orchestration.conf``) and the system checks that report misconfiguration."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import Client

from orchestration.conf import DEFAULTS, get_config


def _ids(*, deploy: bool = False) -> list[str]:
    return [
        message.id
        for message in run_checks(include_deployment_checks=deploy)
        if message.id and message.id.startswith("orchestration.")
    ]


def test_a_project_that_sets_nothing_gets_every_default(settings: Any) -> None:
    del settings.ORCHESTRATION
    assert get_config() == DEFAULTS
    assert _ids() == []


def test_an_override_is_seen_at_once_and_unset_keys_keep_their_default(settings: Any) -> None:
    settings.ORCHESTRATION = {"METRICS_TOKEN": "secret"}
    assert get_config() == {**DEFAULTS, "METRICS_TOKEN": "secret"}
    settings.ORCHESTRATION = {"METRICS": False}
    assert get_config() == {**DEFAULTS, "METRICS": False}


@pytest.mark.django_db
def test_a_malformed_setting_is_a_check_error_and_requests_still_work(settings: Any) -> None:
    settings.ORCHESTRATION = ["METRICS", False]
    assert _ids() == ["orchestration.E001"]
    with pytest.raises(SystemCheckError, match=r"orchestration\.E001"):
        call_command("check")
    # The defaults stand in until the project is fixed: no AttributeError mid-request.
    assert get_config() == DEFAULTS
    assert Client().get("/metrics").status_code == 200


def test_a_value_of_the_wrong_type_is_an_error_naming_the_key(settings: Any) -> None:
    settings.ORCHESTRATION = {"METRICS": "no", "METRICS_TOKEN": None}
    messages = [m for m in run_checks() if m.id == "orchestration.E002"]
    assert sorted(m.msg for m in messages) == [
        "ORCHESTRATION['METRICS'] must be a bool, not str ('no').",
        "ORCHESTRATION['METRICS_TOKEN'] must be a str, not NoneType (None).",
    ]
    assert get_config()["METRICS"] is True


def test_an_unknown_key_is_a_warning_that_suggests_the_close_one(settings: Any) -> None:
    settings.ORCHESTRATION = {"METRIC_TOKEN": "secret"}
    [warning] = [m for m in run_checks() if m.id == "orchestration.W001"]
    assert warning.hint == "Did you mean 'METRICS_TOKEN'?"
    assert get_config()["METRICS_TOKEN"] == ""


def test_a_multiprocess_directory_that_does_not_exist_is_an_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "missing"))
    assert _ids() == ["orchestration.E003"]
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    assert _ids() == []


def test_open_metrics_are_a_deployment_warning(settings: Any) -> None:
    settings.ORCHESTRATION = {"METRICS": True, "METRICS_TOKEN": ""}
    assert _ids() == []
    assert _ids(deploy=True) == ["orchestration.W002"]
    settings.ORCHESTRATION = {"METRICS": True, "METRICS_TOKEN": "secret"}
    assert _ids(deploy=True) == []
    settings.ORCHESTRATION = {"METRICS": False}
    assert _ids(deploy=True) == []


def test_a_whole_number_will_do_for_a_number_of_seconds(settings: Any) -> None:
    settings.ORCHESTRATION = {"EFFECT_LEASE": 300}
    assert _ids() == []
    assert get_config()["EFFECT_LEASE"] == 300
    settings.ORCHESTRATION = {"EFFECT_LEASE": True}
    assert _ids() == ["orchestration.E002"]
    assert get_config()["EFFECT_LEASE"] == DEFAULTS["EFFECT_LEASE"]


def test_the_settings_page_lists_every_key_with_its_default() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "settings.md").read_text()
    table = page.split("<!-- generated: settings")[1].split("<!-- /generated -->")[0]
    rows = dict(re.findall(r"^\| `([A-Z_]+)` \| `[a-z]+` \| `([^`]*)`", table, flags=re.M))

    assert set(rows) == set(DEFAULTS)
    for key, default in rows.items():
        # Strings are written as JSON would write them: the table's one is the empty token.
        expected = '""' if DEFAULTS[key] == "" else repr(DEFAULTS[key])
        assert default == expected, key


def test_each_check_id_names_one_problem_and_the_checks_page_lists_them_all():
    import re
    from pathlib import Path

    import orchestration.checks

    source = Path(orchestration.checks.__file__).read_text()
    raised = re.findall(r'id="(orchestration\.[EW]\d{3})"', source)
    page = (Path(__file__).resolve().parents[2] / "docs" / "checks.md").read_text()
    documented = re.findall(r"^\| `(orchestration\.[EW]\d{3})` \|", page, flags=re.MULTILINE)

    assert len(raised) == len(set(raised)), sorted(raised)
    assert sorted(documented) == sorted(raised)
