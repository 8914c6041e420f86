"""The payment gateway: a protocol, the configured instance and a test-mode fake.

``settings.PAYMENT_GATEWAY`` is the dotted path of the class to use. Gateways
raise ``PaymentRequired`` when the card is refused (the client must change
something) and ``ServiceUnavailable`` when the processor cannot answer now (the
same request may succeed later, so pipelines retry it).
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Protocol, runtime_checkable

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from orchestration import Conflict, PaymentRequired, ServiceUnavailable


@dataclass(frozen=True, slots=True)
class Charge:
    id: str
    amount: Decimal


@dataclass(frozen=True, slots=True)
class Refund:
    id: str
    charge_id: str
    amount: Decimal


@runtime_checkable
class PaymentGateway(Protocol):
    def charge(
        self, *, amount: Decimal, token: str, idempotency_key: str, timeout: float | None = None
    ) -> Charge:
        """Capture ``amount`` from the card behind ``token``.

        A retry with the same ``idempotency_key`` must return the first charge
        instead of charging twice, from any process.
        """
        ...

    def find_charge(self, *, idempotency_key: str, timeout: float | None = None) -> Charge | None:
        """The charge captured under ``idempotency_key``, None if there is none."""
        ...

    def refund(self, *, charge_id: str, amount: Decimal, timeout: float | None = None) -> Refund:
        """Refund a captured charge; refunding the same charge again returns the first refund."""
        ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS charges (
    id TEXT PRIMARY KEY,
    idempotency_key TEXT NOT NULL UNIQUE,
    cents INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS refunds (
    id TEXT PRIMARY KEY,
    charge_id TEXT NOT NULL UNIQUE REFERENCES charges (id),
    cents INTEGER NOT NULL,
    created REAL NOT NULL
);
"""


class FakeGateway:
    """Answers like a card processor's test mode, by card token.

    - ``tok_visa``, ``tok_mastercard``: the charge succeeds;
    - ``tok_declined``: the card is declined (402, ``payment_declined``);
    - ``tok_unavailable``: the processor is temporarily unavailable (503 once
      the retries are spent);
    - any other token is refused as invalid (402, ``invalid_payment_token``).

    Like a real processor it keeps books: every capture and refund is written
    down before it answers, in an SQLite file (``settings.FAKE_GATEWAY_BOOKS``)
    that every process using the gateway shares. So the same idempotency key
    returns the same charge in any gunicorn worker and never captures twice,
    any worker can refund any charge, and tests read the books from outside.
    """

    SUCCEEDING_TOKENS = frozenset({"tok_visa", "tok_mastercard"})
    DECLINED_TOKEN = "tok_declined"
    UNAVAILABLE_TOKEN = "tok_unavailable"

    def __init__(self, books: str | Path | None = None) -> None:
        self.books = Path(books or settings.FAKE_GATEWAY_BOOKS)
        self.books.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._connection() as connection:
            connection.executescript(_SCHEMA)

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            # Autocommit; WAL with synchronous=NORMAL survives the death of any process
            # (what the tests kill), not of the machine: enough for a fake.
            connection = sqlite3.connect(self.books, timeout=30, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            self._local.connection = connection
        return connection

    def charge(
        self, *, amount: Decimal, token: str, idempotency_key: str, timeout: float | None = None
    ) -> Charge:
        if token == self.UNAVAILABLE_TOKEN:
            raise ServiceUnavailable(
                "The payment processor is temporarily unavailable; try again later.",
                code="payment_gateway_unavailable",
            )
        if token == self.DECLINED_TOKEN:
            raise PaymentRequired("The card was declined.", code="payment_declined")
        if token not in self.SUCCEEDING_TOKENS:
            raise PaymentRequired("The payment token is not valid.", code="invalid_payment_token")
        cents = _cents(amount)
        connection = self._connection()
        connection.execute(
            "INSERT INTO charges (id, idempotency_key, cents, created) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (idempotency_key) DO NOTHING",
            (f"ch_{uuid.uuid4().hex[:24]}", idempotency_key, cents, time.time()),
        )
        charge_id, captured = connection.execute(
            "SELECT id, cents FROM charges WHERE idempotency_key = ?", (idempotency_key,)
        ).fetchone()
        if captured != cents:
            raise Conflict(
                "This idempotency key was used for another amount.",
                code="payment_idempotency_key_reused",
            )
        return Charge(id=charge_id, amount=amount)

    def find_charge(self, *, idempotency_key: str, timeout: float | None = None) -> Charge | None:
        row = (
            self._connection()
            .execute("SELECT id, cents FROM charges WHERE idempotency_key = ?", (idempotency_key,))
            .fetchone()
        )
        return None if row is None else Charge(id=row[0], amount=Decimal(row[1]) / 100)

    def refund(self, *, charge_id: str, amount: Decimal, timeout: float | None = None) -> Refund:
        connection = self._connection()
        row = connection.execute("SELECT cents FROM charges WHERE id = ?", (charge_id,)).fetchone()
        if row is None:
            raise PaymentRequired(f"No charge {charge_id} to refund.", code="refund_rejected")
        if _cents(amount) > row[0]:
            raise PaymentRequired("The refund exceeds the captured amount.", code="refund_rejected")
        connection.execute(
            "INSERT INTO refunds (id, charge_id, cents, created) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (charge_id) DO NOTHING",
            (f"re_{uuid.uuid4().hex[:24]}", charge_id, _cents(amount), time.time()),
        )
        refund_id, cents = connection.execute(
            "SELECT id, cents FROM refunds WHERE charge_id = ?", (charge_id,)
        ).fetchone()
        return Refund(id=refund_id, charge_id=charge_id, amount=Decimal(cents) / 100)

    @property
    def charges(self) -> dict[str, Charge]:
        """Every capture in the books, by charge id."""
        rows = self._connection().execute("SELECT id, cents FROM charges ORDER BY created")
        return {charge_id: Charge(charge_id, Decimal(cents) / 100) for charge_id, cents in rows}

    @property
    def refunds(self) -> dict[str, Refund]:
        """Every refund in the books, by the id of the charge it refunded."""
        rows = self._connection().execute(
            "SELECT id, charge_id, cents FROM refunds ORDER BY created"
        )
        return {
            charge_id: Refund(refund_id, charge_id, Decimal(cents) / 100)
            for refund_id, charge_id, cents in rows
        }


def _cents(amount: Decimal) -> int:
    return int((amount * 100).to_integral_value())


def get_gateway() -> PaymentGateway:
    """The gateway named by ``settings.PAYMENT_GATEWAY`` (one instance per class)."""
    return _load_gateway(settings.PAYMENT_GATEWAY)


@cache
def _load_gateway(path: str) -> PaymentGateway:
    try:
        gateway_class = import_string(path)
    except ImportError as exc:
        raise ImproperlyConfigured(f"PAYMENT_GATEWAY={path!r} cannot be imported: {exc}") from exc
    if not (isinstance(gateway_class, type) and issubclass(gateway_class, PaymentGateway)):
        raise ImproperlyConfigured(
            f"PAYMENT_GATEWAY={path!r} does not implement charge(), find_charge() and refund()."
        )
    return gateway_class()
