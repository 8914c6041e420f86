from __future__ import annotations

from orders import quotes
from orders.types import QuoteContext


def quote_tax(ctx: QuoteContext) -> QuoteContext:
    """Ask the tax service for the VAT on the goods (declared output: ``tax``)."""
    ctx.tax = quotes.quote_tax(country=ctx.country, amount=ctx.subtotal, timeout=ctx.remaining())
    return ctx


async def aquote_tax(ctx: QuoteContext) -> QuoteContext:
    """``quote_tax`` on the event loop."""
    ctx.tax = await quotes.aquote_tax(
        country=ctx.country, amount=ctx.subtotal, timeout=ctx.remaining()
    )
    return ctx
