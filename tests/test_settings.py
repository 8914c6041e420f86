"""Misconfiguration stops the process at start with a message naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LOAD_SETTINGS = (
    "import django; django.setup(); from django.conf import settings; "
    "print(settings.DEBUG, settings.DATABASES['default']['ENGINE'])"
)


def test_postgres_gets_a_connect_timeout_a_statement_timeout_and_a_client_deadline():
    completed = start(
        DJANGO_DEBUG="1",
        DATABASE_URL="postgres://app@db.internal:5432/orders",
        DATABASE_STATEMENT_TIMEOUT="2.5",
        EMAIL_URL="smtp://mail.internal:25",
        extra=(
            "db = settings.DATABASES['default']; "
            "print(db['OPTIONS']['connect_timeout'], db['OPTIONS']['options'], "
            "db['QUERY_DEADLINE'], settings.MAILERS['default']['BACKEND'] "
            "if hasattr(settings, 'MAILERS') else settings.EMAIL_BACKEND)"
        ),
    )

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.split()[2:] == [
        "3",
        "-c",
        "statement_timeout=2500",
        "4.5",
        "orchestration.mail.EmailBackend",
    ]


def start(*, extra: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_"))}
    return subprocess.run(
        [sys.executable, "-c", f"{LOAD_SETTINGS}; {extra}" if extra else LOAD_SETTINGS],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "config.settings", "DJANGO_ENV_FILE": "", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, "DJANGO_SECRET_KEY must be set"),
        ({"DJANGO_DEBUG": "ture"}, "DJANGO_DEBUG='ture' is not a boolean"),
        ({"DJANGO_DEBUG": "1", "DATABASE_URL": "mongodb://db/x"}, "DATABASE_URL must be"),
        ({"DJANGO_DEBUG": "1", "EMAIL_URL": "carrier-pigeon://x"}, "EMAIL_URL is malformed"),
        ({"DJANGO_DEBUG": "1", "EMAIL_TIMEOUT": "soon"}, "EMAIL_TIMEOUT='soon' is not a number"),
        ({"DJANGO_DEBUG": "1", "TRUSTED_PROXIES": "the-load-balancer"}, "TRUSTED_PROXIES is"),
        ({"DJANGO_DEBUG": "1", "CACHE_URL": "carrier-pigeon://x"}, "CACHE_URL is malformed"),
        ({"DJANGO_DEBUG": "1", "AXES_FAILURE_LIMIT": "many"}, "AXES_FAILURE_LIMIT='many'"),
        (
            {"DJANGO_DEBUG": "1", "JWT_SESSION_MAX_AGE_DAYS": "forever"},
            "JWT_SESSION_MAX_AGE_DAYS='forever' is not a number",
        ),
        (
            {"DJANGO_DEBUG": "1", "PROMETHEUS_MULTIPROC_DIR": "/nonexistent/metrics"},
            "PROMETHEUS_MULTIPROC_DIR='/nonexistent/metrics' is not a directory",
        ),
        ({"DJANGO_DEBUG": "1", "TASKS_BACKEND": "celery"}, "TASKS_BACKEND='celery' is not one"),
        (
            {"DJANGO_DEBUG": "1", "DATABASE_STATEMENT_TIMEOUT": "0"},
            "DATABASE_STATEMENT_TIMEOUT must be a positive number",
        ),
        (
            {"DJANGO_DEBUG": "1", "DATABASE_CONNECT_TIMEOUT": "3s"},
            "DATABASE_CONNECT_TIMEOUT='3s' is not a number",
        ),
    ],
)
def test_misconfiguration_fails_at_start_naming_the_variable(env, named):
    completed = start(**env)

    assert completed.returncode != 0
    assert "ImproperlyConfigured" in completed.stderr
    assert named in completed.stderr


def test_production_settings_start_with_a_secret_key_and_postgres():
    completed = start(
        DJANGO_SECRET_KEY="x" * 50, DATABASE_URL="postgres://app@db.internal:5432/orders"
    )

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.split() == ["False", "config.postgresql"]
