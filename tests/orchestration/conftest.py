from __future__ import annotations

from collections.abc import Iterator

import pytest

from orchestration.testing import isolated_registry


@pytest.fixture(autouse=True)
def _isolated_registry() -> Iterator[None]:
    """Orchestrators a test defines are forgotten after it, as in a fresh process."""
    with isolated_registry():
        yield
