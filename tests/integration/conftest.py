"""Servers for the integration tests: a migrated, seeded database and the tools they need."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.servers import (
    app_env,
    drop_database,
    manage,
    prepare_database,
    prometheus_binary,
    promtool_binary,
)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database of the servers' own, migrated and seeded with the demo data."""
    url = prepare_database(tmp_path_factory.mktemp("database"))
    env = app_env(database_url=url)
    manage(env, "migrate", "--no-input")
    # seed_demo refuses to run without debug: its accounts have well-known passwords.
    manage({**env, "DJANGO_DEBUG": "1"}, "seed_demo")
    yield url
    drop_database(url)


@pytest.fixture(scope="session")
def prometheus_tools() -> tuple[str, str]:
    """Paths of ``prometheus`` and ``promtool``: a skip where absent, a failure in CI."""
    prometheus, promtool = prometheus_binary(), promtool_binary()
    if prometheus is None or promtool is None:
        reason = (
            "prometheus and promtool are not installed; `make system-deps` installs "
            "Debian's `prometheus` package"
        )
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (required in CI)")
        pytest.skip(reason)
    return prometheus, promtool
