"""A payment gateway that captures, then holds its answer, for the crash tests.

Selected with ``PAYMENT_GATEWAY=tests.reliability.holding_gateway.HoldingGateway``.
It is the fake test-mode gateway (same books, ``FAKE_GATEWAY_BOOKS``), except
that a charge is written to the books first and answered only after
``HOLDING_GATEWAY_SECONDS`` (default 1). While it holds, the process id of the
caller is listed in the books' ``holding`` table, so that a test can kill
exactly the workers that are waiting for a captured charge. A caller whose
``timeout`` is shorter than the hold gets a ``payment_gateway_timeout`` error
when it runs out, as a real client's socket timeout would end the wait: the
capture stands.
"""

from __future__ import annotations

import os
import time
from decimal import Decimal
from pathlib import Path

from orchestration import ServiceUnavailable
from orders.payments import Charge, FakeGateway

HOLD = float(os.environ.get("HOLDING_GATEWAY_SECONDS", "1"))


class HoldingGateway(FakeGateway):
    def __init__(self, books: str | Path | None = None) -> None:
        super().__init__(books)
        self._connection().execute(
            "CREATE TABLE IF NOT EXISTS holding (pid INTEGER NOT NULL, charge_id TEXT NOT NULL)"
        )

    def charge(
        self, *, amount: Decimal, token: str, idempotency_key: str, timeout: float | None = None
    ) -> Charge:
        charge = super().charge(
            amount=amount, token=token, idempotency_key=idempotency_key, timeout=timeout
        )
        connection = self._connection()
        connection.execute("INSERT INTO holding VALUES (?, ?)", (os.getpid(), charge.id))
        try:
            if timeout is not None and timeout < HOLD:
                time.sleep(timeout)
                raise ServiceUnavailable(
                    "The payment processor did not answer in time.",
                    code="payment_gateway_timeout",
                )
            time.sleep(HOLD)
        finally:
            connection.execute("DELETE FROM holding WHERE charge_id = ?", (charge.id,))
        return charge
