"""Project-wide pytest fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: Any) -> Iterator[None]:
    """Close the effect journal's own connections before the test database is dropped."""
    yield
    from orchestration import journal

    journal.close_connections()
