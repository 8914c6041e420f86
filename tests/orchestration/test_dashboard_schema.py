"""Every generated dashboard validates against Grafana's current dashboard JSON schema.

The schema is not part of this repository: it is read from
``$GRAFANA_DASHBOARD_SCHEMA``, else from ``../shared/grafana/dashboard.jsonschema.json``
beside the checkout. Without it the test is skipped and says so; with the
variable set (``.ci/run`` sets it) a missing file is a failure.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from orchestration import OperationContext, Retry, Step, dashboards, registry

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SCHEMA = ROOT.parent / "shared" / "grafana" / "dashboard.jsonschema.json"


def _noop(ctx: OperationContext) -> OperationContext:
    return ctx


#: Every kind of step, so that every panel builder's output is validated.
EVERY_PANEL = {
    "name": "every_panel",
    "class": "tests.EveryPanel",
    "atomic": True,
    "steps": [
        Step(
            "a", _noop, retry=Retry(attempts=2), compensate=_noop, when=lambda ctx: True
        ).describe(),
        Step("b", _noop, critical=False, after_commit=True).describe(),
    ],
}


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    configured = os.environ.get("GRAFANA_DASHBOARD_SCHEMA")
    path = Path(configured) if configured else DEFAULT_SCHEMA
    if not path.is_file():
        if configured:
            pytest.fail(f"GRAFANA_DASHBOARD_SCHEMA={configured} does not exist.")
        pytest.skip(f"Grafana's dashboard schema is not at {path}; set GRAFANA_DASHBOARD_SCHEMA.")
    schema = json.loads(path.read_text(encoding="utf-8"))
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def _errors(validator: jsonschema.Draft7Validator, dashboard: dict[str, Any]) -> list[str]:
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(dashboard)
    ]


def test_every_generated_dashboard_is_valid(validator: jsonschema.Draft7Validator) -> None:
    descriptions = [*(registry.describe(cls) for cls in registry.registered()), EVERY_PANEL]
    generated = {
        path: json.loads(text)
        for path, text in dashboards.render(descriptions).items()
        if path.endswith(".json")
    }
    assert len(generated) == len(descriptions) + 1  # and the overview
    for path, dashboard in generated.items():
        assert _errors(validator, dashboard) == [], path


def test_the_validator_rejects_what_older_grafana_models_wrote(
    validator: jsonschema.Draft7Validator,
) -> None:
    [overview] = [
        json.loads(text)
        for path, text in dashboards.render([]).items()
        if path.endswith("orchestration-overview.json")
    ]
    overview["style"] = "dark"
    assert _errors(validator, overview) == [
        ": Additional properties are not allowed ('style' was unexpected)"
    ]
