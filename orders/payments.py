"""The payment gateway: a protocol, the configured instance and a test-mode fake.

``settings.PAYMENT_GATEWAY`` is the dotted path of the class to use. Gateways
raise ``PaymentRequired`` when the card is refused (the client must change
something) and ``ServiceUnavailable`` when the processor cannot answer now (the
same request may succeed later, so pipelines retry it).
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import uuid
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Protocol, runtime_checkable

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from orchestration import PaymentRequired, ServiceUnavailable


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
        instead of charging twice.
        """
        ...

    def refund(self, *, charge_id: str, amount: Decimal, timeout: float | None = None) -> Refund:
        """Refund a captured charge; refunding the same charge again returns the first refund."""
        ...


class FakeGateway:
    """Answers like a card processor's test mode, by card token.

    - ``tok_visa``, ``tok_mastercard``: the charge succeeds;
    - ``tok_declined``: the card is declined (402, ``payment_declined``);
    - ``tok_unavailable``: the processor is temporarily unavailable (503 once
      the retries are spent);
    - any other token is refused as invalid (402, ``invalid_payment_token``).

    Charges and refunds are also kept in memory, so that tests can see what was
    captured and refunded. A charge id carries its amount and a signature made
    with the secret key, so that any process (any gunicorn worker) can refund a
    charge another one captured, as a real processor's API would.
    """

    SUCCEEDING_TOKENS = frozenset({"tok_visa", "tok_mastercard"})
    DECLINED_TOKEN = "tok_declined"
    UNAVAILABLE_TOKEN = "tok_unavailable"

    def __init__(self) -> None:
        # Gunicorn threads and the concurrency tests share one instance.
        self._lock = threading.Lock()
        self.charges: dict[str, Charge] = {}
        self.refunds: dict[str, Refund] = {}
        self._charges_by_key: dict[str, Charge] = {}

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
        with self._lock:
            existing = self._charges_by_key.get(idempotency_key)
            if existing is not None:
                return existing
            charge = Charge(id=_charge_id(amount), amount=amount)
            self.charges[charge.id] = charge
            self._charges_by_key[idempotency_key] = charge
            return charge

    def refund(self, *, charge_id: str, amount: Decimal, timeout: float | None = None) -> Refund:
        with self._lock:
            existing = self.refunds.get(charge_id)
            if existing is not None:
                return existing
            charge = self.charges.get(charge_id) or _parse_charge_id(charge_id)
            if charge is None:
                raise PaymentRequired(f"No charge {charge_id} to refund.", code="refund_rejected")
            if amount > charge.amount:
                raise PaymentRequired(
                    "The refund exceeds the captured amount.", code="refund_rejected"
                )
            refund = Refund(id=f"re_{uuid.uuid4().hex[:24]}", charge_id=charge_id, amount=amount)
            self.refunds[charge_id] = refund
            return refund


def _signature(payload: str) -> str:
    key = settings.SECRET_KEY.encode()
    return hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()[:16]


def _charge_id(amount: Decimal) -> str:
    """``ch_<nonce>_<cents>_<signature>``: verifiable without shared state."""
    payload = f"{uuid.uuid4().hex[:16]}_{int(amount * 100)}"
    return f"ch_{payload}_{_signature(payload)}"


def _parse_charge_id(charge_id: str) -> Charge | None:
    """The charge a signed id stands for; None for an id this gateway did not issue."""
    parts = charge_id.split("_")
    if len(parts) != 4 or parts[0] != "ch" or not parts[2].isdigit():
        return None
    payload = f"{parts[1]}_{parts[2]}"
    if not hmac.compare_digest(parts[3], _signature(payload)):
        return None
    return Charge(id=charge_id, amount=Decimal(parts[2]) / 100)


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
            f"PAYMENT_GATEWAY={path!r} does not implement charge() and refund()."
        )
    return gateway_class()
