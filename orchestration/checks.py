"""System checks (``manage.py check``): misconfiguration reported when the project starts.

| id | level | meaning |
| --- | --- | --- |
| orchestration.E001 | error | ``ORCHESTRATION`` is not a dictionary |
| orchestration.E002 | error | a key of ``ORCHESTRATION`` has the wrong type |
| orchestration.W001 | warning | ``ORCHESTRATION`` has a key the app does not know (a typo?) |
| orchestration.E003 | error | ``PROMETHEUS_MULTIPROC_DIR`` is set but is not a directory |
| orchestration.E004 | error | ``PARALLEL_WORKERS`` is less than 1 |
| orchestration.W002 | warning | (``--deploy``) metrics exported without ``METRICS_TOKEN`` |
| orchestration.E005 | error | ``RUN_RECORD_RETENTION_DAYS`` is less than 1 |
| orchestration.E006 | error | ``QUEUE_RETENTION_DAYS`` is less than 1 |
| orchestration.E007 | error | ``PURGE_EVERY`` is negative |
| orchestration.E008 | error | ``RUN_RECORD_SAMPLE_RATE`` is not between 0 and 1 |
| orchestration.E009 | error | a django-tasks-db release whose task rows the outbox does not know |
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from orchestration.conf import DEFAULTS, SETTING, TYPES, get_config, well_typed


@register(Tags.compatibility)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    value = getattr(settings, SETTING, {})
    if not isinstance(value, Mapping):
        return [
            Error(
                f"{SETTING} must be a dictionary, not {type(value).__name__}.",
                hint=f"Set {SETTING} = {{...}} with the keys in docs/settings.md.",
                id="orchestration.E001",
            )
        ]
    messages: list[CheckMessage] = []
    for key, item in value.items():
        if key not in DEFAULTS:
            close = difflib.get_close_matches(str(key), DEFAULTS, n=1)
            messages.append(
                Warning(
                    f"{SETTING}[{key!r}] is not a setting of the orchestration app; it is ignored.",
                    hint=f"Did you mean {close[0]!r}?"
                    if close
                    else f"Known: {', '.join(DEFAULTS)}.",
                    id="orchestration.W001",
                )
            )
        elif not well_typed(key, item):
            messages.append(
                Error(
                    f"{SETTING}[{key!r}] must be a {TYPES[key].__name__}, "
                    f"not {type(item).__name__} ({item!r}).",
                    hint=f"The default is {DEFAULTS[key]!r}.",
                    id="orchestration.E002",
                )
            )
        elif key == "PARALLEL_WORKERS" and isinstance(item, int) and item < 1:
            messages.append(
                Error(
                    f"{SETTING}['PARALLEL_WORKERS'] must be at least 1, not {item!r}.",
                    hint="Parallel groups run their sync steps on this many threads.",
                    id="orchestration.E004",
                )
            )
    return messages


@register(Tags.compatibility)
def check_multiprocess_directory(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory and not os.path.isdir(directory):
        return [
            Error(
                f"PROMETHEUS_MULTIPROC_DIR={directory!r} is not a directory.",
                hint="Create it (empty) before the server starts, or unset the variable.",
                id="orchestration.E003",
            )
        ]
    return []


@register(Tags.security, deploy=True)
def check_metrics_token(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    config = get_config()
    if config["METRICS"] and not config["METRICS_TOKEN"]:
        return [
            Warning(
                f"{SETTING}['METRICS_TOKEN'] is empty: anyone who can reach the metrics "
                "view reads the service's metrics.",
                hint="Set a token and give it to Prometheus (authorization credentials), "
                "or serve the metrics view only on an internal address.",
                id="orchestration.W002",
            )
        ]
    return []


@register(Tags.compatibility)
def check_run_records(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    config = get_config()
    messages: list[CheckMessage] = []
    if not 0 <= config["RUN_RECORD_SAMPLE_RATE"] <= 1:
        messages.append(
            Error(
                f"{SETTING}['RUN_RECORD_SAMPLE_RATE'] must be between 0 and 1, "
                f"not {config['RUN_RECORD_SAMPLE_RATE']!r}.",
                hint="0 keeps no successful run, 1 keeps every one; failures are always kept.",
                id="orchestration.E008",
            )
        )
    if config["RUN_RECORD_RETENTION_DAYS"] < 1:
        messages.append(
            Error(
                f"{SETTING}['RUN_RECORD_RETENTION_DAYS'] must be at least 1, "
                f"not {config['RUN_RECORD_RETENTION_DAYS']!r}.",
                hint="purge_run_records deletes the records older than this many days.",
                id="orchestration.E005",
            )
        )
    return messages


@register(Tags.compatibility)
def check_queue_retention(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    config = get_config()
    messages: list[CheckMessage] = []
    if config["QUEUE_RETENTION_DAYS"] < 1:
        messages.append(
            Error(
                f"{SETTING}['QUEUE_RETENTION_DAYS'] must be at least 1, "
                f"not {config['QUEUE_RETENTION_DAYS']!r}.",
                hint="The periodic purge deletes the queued steps that finished longer ago "
                "than this many days.",
                id="orchestration.E006",
            )
        )
    if config["PURGE_EVERY"] < 0:
        messages.append(
            Error(
                f"{SETTING}['PURGE_EVERY'] must not be negative, not {config['PURGE_EVERY']!r}.",
                hint="Seconds between the purges the relay triggers; 0 turns them off.",
                id="orchestration.E007",
            )
        )
    return messages


@register(Tags.compatibility)
def check_task_rows(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    # Imported here: the outbox uses models, and this module loads with the app.
    from orchestration import outbox

    try:
        if not outbox.stores_tasks():
            return []
    except Exception:  # a TASKS setting Django's own checks report
        return []
    return [
        Error(
            problem,
            hint="Install the django-tasks-db release django-orchestration requires "
            "(pip install django-orchestration keeps it), or upgrade django-orchestration.",
            id="orchestration.E009",
        )
        for problem in outbox.task_row_problems()
    ]
