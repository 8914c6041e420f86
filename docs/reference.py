"""Writes the generated tables of the documentation: settings and system checks.

The settings table is built from ``orchestration.conf`` (keys, types, defaults), the checks
table from Django's check registry (every check of the ``orchestration`` app, the ids its
messages carry, whether it runs only with ``--deploy``). What a setting or a check means is
written here, once per key or id; a key or id without a meaning, or a meaning without a key
or id, is an error, so neither table can drift from the code.

    python docs/reference.py           # rewrite the tables in place
    python docs/reference.py --check   # exit 1 when a page is stale (CI)
"""

from __future__ import annotations

import argparse
import ast
import inspect
import json
import os
import re
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent

SETTING_MEANINGS: dict[str, str] = {
    "METRICS": "export the engine's Prometheus metrics (results keep their timings either way)",
    "METRICS_TOKEN": (
        "when set, the metrics view answers only requests with "
        "`Authorization: Bearer <token>`, and 401 to any other (see below)"
    ),
    "PARALLEL_WORKERS": "threads per process that run the sync steps of parallel groups",
    "EFFECT_LEASE": (
        "seconds a run holds its journaled effects before `recover_effects` may undo them; "
        "keep it above the longest a run can live (the worker timeout)"
    ),
    "JOURNAL_SYNCHRONOUS_COMMIT": (
        "on PostgreSQL the journal's pre-call commit waits for the disk; `False` saves an "
        "fsync per journaled call and can lose an intent in a database crash "
        "([Guarantees](guarantees.md))"
    ),
    "RUN_RECORDS": "keep a run record of every failed run and of a sample of the successful ones",
    "RUN_RECORD_SAMPLE_RATE": "probability (0.0 to 1.0) that a successful run is recorded",
    "RUN_RECORD_RETENTION_DAYS": (
        "days a run record is kept (the periodic purge, `purge_run_records`)"
    ),
    "TRACING": "OpenTelemetry spans per run and step, when a tracer provider is configured",
    "QUEUE_RELAY_AFTER": (
        "seconds before the relay dispatches again an after-commit step still queued "
        "(doubled per dispatch)"
    ),
    "QUEUE_LEASE": "seconds a worker holds a step without a `timeout` before another may take it",
    "QUEUE_LEASE_GRACE": "seconds added to a step's `timeout` for its worker's lease",
    "QUEUE_MAX_ATTEMPTS": (
        "deliveries of a step failing with a 503-class error before it is `failed`"
    ),
    "QUEUE_RETENTION_DAYS": (
        "days a finished (`done` or `failed`) queued step is kept; `queued` and `running` "
        "ones are never deleted"
    ),
    "PURGE_EVERY": (
        "seconds between the purges of expired run records and queued steps that "
        "`relay_queued_steps` triggers; `0` turns them off"
    ),
}

CHECK_MEANINGS: dict[str, str] = {
    "orchestration.E001": "`ORCHESTRATION` is not a dictionary",
    "orchestration.E002": "a key has a value of the wrong type (the default stands in for it)",
    "orchestration.E003": "`PROMETHEUS_MULTIPROC_DIR` is set but is not a directory",
    "orchestration.E004": "`PARALLEL_WORKERS` is less than 1",
    "orchestration.E005": "`RUN_RECORD_RETENTION_DAYS` is less than 1",
    "orchestration.E006": "`QUEUE_RETENTION_DAYS` is less than 1",
    "orchestration.E007": "`PURGE_EVERY` is negative",
    "orchestration.E008": "`RUN_RECORD_SAMPLE_RATE` is not between 0 and 1",
    "orchestration.E009": "the task backend is django-tasks-db in a release whose task rows "
    "the outbox does not know (it writes them itself)",
    "orchestration.W001": "a key the app does not know (the hint names the closest one)",
    "orchestration.W002": "metrics are exported without `METRICS_TOKEN`",
}

LEVELS = {"Critical", "Error", "Warning", "Info", "Debug"}


@dataclass(frozen=True)
class Check:
    id: str
    level: str
    deploy: bool


def app_checks() -> list[Check]:
    """Every message id the orchestration app's registered checks can report."""
    from django.core.checks.registry import registry

    deployment = set(registry.deployment_checks)
    found = []
    for function in registry.get_checks(include_deployment_checks=True):
        if not function.__module__.startswith("orchestration."):
            continue
        tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and getattr(node.func, "id", None) in LEVELS):
                continue
            for keyword in node.keywords:
                if keyword.arg == "id" and isinstance(keyword.value, ast.Constant):
                    found.append(
                        Check(
                            id=str(keyword.value.value),
                            level=node.func.id.lower(),  # type: ignore[attr-defined]
                            deploy=function in deployment,
                        )
                    )
    return sorted(found, key=lambda check: check.id)


def _matched(kind: str, documented: dict[str, str], actual: list[str]) -> None:
    missing = sorted(set(actual) - set(documented))
    extra = sorted(set(documented) - set(actual))
    if missing or extra:
        raise SystemExit(
            f"docs/reference.py: {kind} without a meaning here: {missing or 'none'}; "
            f"meanings of {kind} the code no longer has: {extra or 'none'}"
        )


def _default(value: Any) -> str:
    return json.dumps(value) if isinstance(value, str) else repr(value)


def settings_table() -> str:
    from orchestration.conf import DEFAULTS, TYPES

    _matched("settings", SETTING_MEANINGS, list(DEFAULTS))
    rows = ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
    rows += [
        f"| `{key}` | `{TYPES[key].__name__}` | `{_default(default)}` | {SETTING_MEANINGS[key]} |"
        for key, default in DEFAULTS.items()
    ]
    return "\n".join(rows)


def checks_table() -> str:
    checks = app_checks()
    ids = [check.id for check in checks]
    if len(ids) != len(set(ids)):
        raise SystemExit(f"docs/reference.py: a check id is used twice: {sorted(ids)}")
    _matched("check ids", CHECK_MEANINGS, ids)
    rows = ["| id | level | reported by | reported when |", "| --- | --- | --- | --- |"]
    rows += [
        f"| `{check.id}` | {check.level} | `check{' --deploy' if check.deploy else ''}` "
        f"| {CHECK_MEANINGS[check.id]} |"
        for check in checks
    ]
    return "\n".join(rows)


GENERATORS: dict[str, tuple[str, Callable[[], str]]] = {
    "settings": ("settings.md", settings_table),
    "checks": ("checks.md", checks_table),
}


def _block(name: str) -> re.Pattern[str]:
    return re.compile(
        rf"(<!-- generated: {name} by docs/reference.py; do not edit -->\n)(?:.*?\n)?"
        r"(<!-- /generated -->)",
        re.S,
    )


def rendered() -> Iterator[tuple[Path, str, str]]:
    """(page, its text now, its text with fresh tables) for every generated page."""
    for name, (page, generate) in GENERATORS.items():
        path = DOCS / page
        text = path.read_text()
        match = _block(name).search(text)
        if match is None:
            raise SystemExit(
                f"{path}: no generated block; it needs the lines "
                f"'<!-- generated: {name} by docs/reference.py; do not edit -->' and "
                "'<!-- /generated -->'"
            )
        fresh = f"{text[: match.end(1)]}{generate()}\n{text[match.start(2) :]}"
        yield path, text, fresh


def stale_pages() -> list[Path]:
    return [path for path, now, fresh in rendered() if now != fresh]


def write() -> list[Path]:
    written = []
    for path, now, fresh in rendered():
        if now != fresh:
            path.write_text(fresh)
            written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when a page is stale")
    options = parser.parse_args(argv)

    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()

    if options.check:
        stale = stale_pages()
        for path in stale:
            print(f"{path.relative_to(ROOT)} is out of date: run python docs/reference.py")
        return 1 if stale else 0
    for path in write():
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
