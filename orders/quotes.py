"""Fake shipping and tax services: answers like a carrier's and a tax API's, with their latency.

Both are external services to the quote pipeline: each call takes
``settings.ORDERS_QUOTE_LATENCY[service]`` seconds (a realistic 120 ms and 80 ms
by default), honours the caller's time budget like an HTTP client's timeout,
and exists in a blocking and an ``async`` flavour that share their arithmetic.
"""

from __future__ import annotations

import asyncio
import time
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings

from orchestration import ServiceUnavailable

CENT = Decimal("0.01")

#: VAT by destination country (the tax service answers for these only).
TAX_RATES = {
    "AT": Decimal("0.20"),
    "BE": Decimal("0.21"),
    "DE": Decimal("0.19"),
    "ES": Decimal("0.21"),
    "FR": Decimal("0.20"),
    "IT": Decimal("0.22"),
    "NL": Decimal("0.21"),
}

#: The carrier's tariff: a base price by destination, and a price per unit after the first.
SHIPPING_BASE = {"FR": Decimal("4.90")}
SHIPPING_BASE_ABROAD = Decimal("9.90")
SHIPPING_PER_EXTRA_UNIT = Decimal("0.50")


def latency(service: str) -> float:
    return float(settings.ORDERS_QUOTE_LATENCY[service])


def _check_budget(service: str, timeout: float | None) -> float:
    """The call's duration; a budget shorter than that is a client timeout."""
    seconds = latency(service)
    if timeout is not None and timeout < seconds:
        raise ServiceUnavailable(f"The {service} service did not answer in time.")
    return seconds


def shipping_price(*, country: str, units: int) -> Decimal:
    base = SHIPPING_BASE.get(country, SHIPPING_BASE_ABROAD)
    return base + SHIPPING_PER_EXTRA_UNIT * max(0, units - 1)


def tax_amount(*, country: str, amount: Decimal) -> Decimal:
    return (amount * TAX_RATES[country]).quantize(CENT, rounding=ROUND_HALF_UP)


def quote_shipping(*, country: str, units: int, timeout: float | None = None) -> Decimal:
    """The carrier's price to send ``units`` items to ``country``."""
    time.sleep(_check_budget("shipping", timeout))
    return shipping_price(country=country, units=units)


async def aquote_shipping(*, country: str, units: int, timeout: float | None = None) -> Decimal:
    await asyncio.sleep(_check_budget("shipping", timeout))
    return shipping_price(country=country, units=units)


def quote_tax(*, country: str, amount: Decimal, timeout: float | None = None) -> Decimal:
    """The VAT due on goods worth ``amount`` delivered to ``country``."""
    time.sleep(_check_budget("tax", timeout))
    return tax_amount(country=country, amount=amount)


async def aquote_tax(*, country: str, amount: Decimal, timeout: float | None = None) -> Decimal:
    await asyncio.sleep(_check_budget("tax", timeout))
    return tax_amount(country=country, amount=amount)
