"""Inputs of the order pipelines and the contexts their operations share."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from orchestration import OperationContext
from orders.models import IdempotencyRecord, Order, Product
from orders.payments import Charge, Refund


@dataclass(frozen=True, slots=True)
class CreateOrderInput:
    """An order request as the client sent it: untrusted until ``validate_order`` ran.

    ``data`` is the parsed request body; ``idempotency_key`` the optional
    ``Idempotency-Key`` header.
    """

    data: Any
    idempotency_key: str | None = None

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the body in canonical form (key order and spacing do not matter)."""
        canonical = json.dumps(self.data, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class OrderLine:
    product_id: int
    quantity: int


@dataclass(kw_only=True, eq=False)
class CreateOrderContext(OperationContext):
    input: CreateOrderInput
    lines: tuple[OrderLine, ...] = ()
    payment_token: str = ""
    idempotency_record: IdempotencyRecord | None = None
    #: The locked product rows, by id, as ``reserve_stock`` left them.
    products: dict[int, Product] = field(default_factory=dict)
    order: Order | None = None
    charge: Charge | None = None

    def placed_order(self) -> Order:
        if self.order is None:
            raise RuntimeError("No order yet: the create_order step has not run.")
        return self.order


@dataclass(frozen=True, slots=True)
class CancelOrderInput:
    """The order to cancel. ``any_owner``: an operator cancels a customer's order (the
    admin's "Cancel and refund", which checks the permission); the API never sets it, so
    there another user's order is a 404."""

    order_id: int
    any_owner: bool = False


@dataclass(kw_only=True, eq=False)
class CancelOrderContext(OperationContext):
    input: CancelOrderInput
    order: Order | None = None
    refund: Refund | None = None

    def loaded_order(self) -> Order:
        if self.order is None:
            raise RuntimeError("No order yet: the load_order step has not run.")
        return self.order


@dataclass(frozen=True, slots=True)
class QuoteInput:
    """A quote request as the client sent it (the parsed body): untrusted until validated."""

    data: Any


@dataclass(kw_only=True, eq=False)
class QuoteContext(OperationContext):
    input: QuoteInput
    lines: tuple[OrderLine, ...] = ()
    country: str = ""
    units: int = 0
    subtotal: Decimal = Decimal("0.00")
    #: Written by the parallel quote steps (their declared outputs).
    shipping: Decimal | None = None
    tax: Decimal | None = None

    def quote(self) -> dict[str, Any]:
        if self.shipping is None or self.tax is None:
            raise RuntimeError("No quote yet: the quote steps have not run.")
        return {
            "country": self.country,
            "subtotal": self.subtotal,
            "shipping": self.shipping,
            "tax": self.tax,
            "total": self.subtotal + self.shipping + self.tax,
        }
