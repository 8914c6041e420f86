"""A payment gateway that is intermittently unavailable, for the fault-injection test.

Selected with ``PAYMENT_GATEWAY=tests.reliability.flaky_gateway.FlakyGateway``
(the gateway is a pluggable setting, so production code needs no test mode of
its own). It behaves like the fake test-mode gateway, except that a share of
the charge attempts (``FLAKY_GATEWAY_FAILURE_RATE``, default 0.4) fail with
``payment_gateway_unavailable`` before anything is captured.
"""

from __future__ import annotations

import os
import random
from decimal import Decimal

from orchestration import ServiceUnavailable
from orders.payments import Charge, FakeGateway

FAILURE_RATE = float(os.environ.get("FLAKY_GATEWAY_FAILURE_RATE", "0.4"))


class FlakyGateway(FakeGateway):
    def __init__(self) -> None:
        super().__init__()
        self._random = random.Random()

    def charge(
        self, *, amount: Decimal, token: str, idempotency_key: str, timeout: float | None = None
    ) -> Charge:
        if self._random.random() < FAILURE_RATE:
            raise ServiceUnavailable(
                "The payment processor is temporarily unavailable; try again later.",
                code="payment_gateway_unavailable",
            )
        return super().charge(
            amount=amount, token=token, idempotency_key=idempotency_key, timeout=timeout
        )
