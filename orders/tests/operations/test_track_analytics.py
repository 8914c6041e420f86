"""track_analytics: the order_placed event (best effort)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from orchestration.testing import run_step
from orders.models import Product
from orders.orchestrators import CreateOrder
from orders.tests.support import placed_context, step_named

pytestmark = pytest.mark.django_db


def test_track_analytics_emits_an_order_placed_event(
    user: Any, keyboard: Product, cable: Product, caplog: pytest.LogCaptureFixture
) -> None:
    ctx = placed_context(user, (keyboard, 2), (cable, 3))

    with caplog.at_level(logging.INFO, logger="orders.analytics"):
        outcome = run_step(step_named(CreateOrder, "track_analytics"), ctx)

    assert outcome.ok
    [record] = [r for r in caplog.records if r.name == "orders.analytics"]
    message = record.getMessage()
    assert f"order={ctx.placed_order().pk}" in message
    assert "lines=2 units=5 total=207.97" in message
