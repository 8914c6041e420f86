"""The app's settings: one ``ORCHESTRATION`` dictionary, every key with a default.

Read them through ``get_config()``, never from ``django.conf.settings``
directly: a project that sets nothing gets the defaults, and a test's
``override_settings(ORCHESTRATION=...)`` is seen at once (the cache is cleared
on ``setting_changed``). Values are checked by ``manage.py check``
(``orchestration.checks``), not here: a wrong value is reported with its
check id when the project starts, and the defaults stand in for it meanwhile.

Documented in README.md ("Settings").
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

SETTING = "ORCHESTRATION"

DEFAULTS: dict[str, Any] = {
    # Export the engine's Prometheus metrics; results keep their timings either way.
    "METRICS": True,
    # When set, the metrics view answers only requests with ``Authorization: Bearer <token>``.
    "METRICS_TOKEN": "",
    # Worker threads (per process) that run the sync steps of parallel groups.
    "PARALLEL_WORKERS": 16,
    # Seconds a run holds its journaled effects before ``recover_effects`` may undo them:
    # longer than any run can live (gunicorn's worker timeout).
    "EFFECT_LEASE": 120.0,
    # On PostgreSQL the journal's pre-call commit waits for the disk, so that a crash of the
    # database server cannot lose an intent. False saves an fsync per journaled call and
    # gives that up: a database crash within a moment of the call can lose the intent.
    "JOURNAL_SYNCHRONOUS_COMMIT": True,
    # Keep a run record of every failed run and of a sample of the successful ones.
    "RUN_RECORDS": True,
    # The probability with which a successful run is recorded (0 to 1).
    "RUN_RECORD_SAMPLE_RATE": 0.01,
    # Days ``purge_run_records`` (and the periodic purge) keeps run records.
    "RUN_RECORD_RETENTION_DAYS": 30,
    # OpenTelemetry spans per run and step, when a tracer provider is configured.
    "TRACING": True,
    # Queued after-commit steps (``orchestration.outbox``): seconds after which the relay
    # dispatches again a step still queued (doubled on every further dispatch of it),
    "QUEUE_RELAY_AFTER": 30.0,
    # seconds a worker may hold a step without a time budget before another may take it,
    "QUEUE_LEASE": 300.0,
    # seconds added to a step's budget for its lease (a live worker finishes well within),
    "QUEUE_LEASE_GRACE": 30.0,
    # and deliveries of a step that keeps failing with a 503-class error before it fails.
    "QUEUE_MAX_ATTEMPTS": 5,
    # Days a finished (done or failed) queued step is kept; queued and running ones stay.
    "QUEUE_RETENTION_DAYS": 30,
    # Seconds between the purges the relay triggers (``orchestration.retention``); 0: none.
    "PURGE_EVERY": 3600.0,
}

#: The type each key must have (``manage.py check`` reports another one).
TYPES: dict[str, type] = {
    "METRICS": bool,
    "METRICS_TOKEN": str,
    "PARALLEL_WORKERS": int,
    "EFFECT_LEASE": float,
    "JOURNAL_SYNCHRONOUS_COMMIT": bool,
    "RUN_RECORDS": bool,
    "RUN_RECORD_SAMPLE_RATE": float,
    "RUN_RECORD_RETENTION_DAYS": int,
    "TRACING": bool,
    "QUEUE_RELAY_AFTER": float,
    "QUEUE_LEASE": float,
    "QUEUE_LEASE_GRACE": float,
    "QUEUE_MAX_ATTEMPTS": int,
    "QUEUE_RETENTION_DAYS": int,
    "PURGE_EVERY": float,
}


def well_typed(key: str, value: Any) -> bool:
    """Whether ``value`` has the type of setting ``key`` (an int will do for a float)."""
    expected = TYPES[key]
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return True
    return isinstance(value, expected)


def user_settings() -> Mapping[str, Any]:
    """The project's ``ORCHESTRATION``, or nothing when it is unset or not a mapping."""
    value = getattr(settings, SETTING, None)
    return value if isinstance(value, Mapping) else {}


@cache
def get_config() -> dict[str, Any]:
    """The defaults, overridden by every well-typed key the project sets."""
    config = dict(DEFAULTS)
    for key, value in user_settings().items():
        if key in TYPES and well_typed(key, value):
            config[key] = value
    return config


@receiver(setting_changed)
def _reset(*, setting: str, **kwargs: Any) -> None:
    if setting == SETTING:
        get_config.cache_clear()
