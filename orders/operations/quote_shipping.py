from __future__ import annotations

from orders import quotes
from orders.types import QuoteContext


def quote_shipping(ctx: QuoteContext) -> QuoteContext:
    """Ask the carrier for the shipping price (declared output: ``shipping``)."""
    ctx.shipping = quotes.quote_shipping(
        country=ctx.country, units=ctx.units, timeout=ctx.remaining()
    )
    return ctx


async def aquote_shipping(ctx: QuoteContext) -> QuoteContext:
    """``quote_shipping`` on the event loop."""
    ctx.shipping = await quotes.aquote_shipping(
        country=ctx.country, units=ctx.units, timeout=ctx.remaining()
    )
    return ctx
