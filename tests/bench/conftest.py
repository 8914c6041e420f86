"""Benchmarks run only when selected with ``-m bench`` (``make bench``).

Outside such a run the modules are not even imported: they define throwaway
orchestrators and a bench-only URL configuration that the regular suite must
not see.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

BENCH_DIR = Path(__file__).resolve().parent


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if "bench" in (config.getoption("markexpr") or ""):
        return None
    if collection_path.name.startswith("test_") and collection_path.parent == BENCH_DIR:
        return True
    return None


@pytest.fixture(scope="session")
def django_db_modify_db_settings() -> None:
    """On PostgreSQL, name the benchmark's test database ``bench_test_<name>``."""
    from django.db import connections

    settings_dict = connections["default"].settings_dict
    if settings_dict["ENGINE"].endswith("postgresql"):
        settings_dict.setdefault("TEST", {})["NAME"] = f"bench_test_{settings_dict['NAME']}"


@pytest.fixture
def bench_database() -> Iterator[str]:
    """An empty PostgreSQL database for servers under load (``BENCH_DATABASE_URL``,
    a ``bench_*`` name), dropped afterwards; the test is skipped without PostgreSQL."""
    from tests.bench.load import bench_database

    yield from bench_database()
