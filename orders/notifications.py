"""Emails about orders, sent through Django's mail framework (``EMAIL_URL``)."""

from __future__ import annotations

import smtplib

from django.conf import settings
from django.core.mail import EmailMessage, get_connection

from orchestration import ServiceUnavailable
from orders.models import Order
from orders.types import CancelOrderContext, CreateOrderContext


def send_order_email(
    *,
    order: Order,
    subject: str,
    body: str,
    timeout: float | None,
    dedupe_key: str | None = None,
) -> None:
    """Mail the order's owner; an unreachable mail server is ``email_unavailable``.

    ``timeout`` (seconds, from the step's budget) is an overall deadline for the
    SMTP conversation; without one the ``EMAIL_TIMEOUT`` setting applies.
    ``dedupe_key`` (the queued step's id) makes the ``Message-ID``, so a copy
    sent again after a worker died between the server's acceptance and the
    step's completion carries the same id and mail systems can tell.
    """
    connection = get_connection(timeout=settings.EMAIL_TIMEOUT if timeout is None else timeout)
    headers = {"Message-ID": f"<{dedupe_key}@orders.invalid>"} if dedupe_key else None
    message = EmailMessage(
        subject,
        body,
        settings.DEFAULT_FROM_EMAIL,
        [order.owner.email],
        connection=connection,
        headers=headers,
    )
    try:
        message.send()
    except (smtplib.SMTPException, OSError) as exc:
        # An outage of the mail server is expected, not a bug: report it with a
        # stable code instead of a traceback.
        raise ServiceUnavailable(
            f"The email could not be sent: {type(exc).__name__}.", code="email_unavailable"
        ) from exc


def owner_has_email(ctx: CreateOrderContext | CancelOrderContext) -> bool:
    """Condition of the email steps: there is an address to write to."""
    return ctx.order is not None and bool(ctx.order.owner.email)
