"""Emails about orders, sent through Django's mail framework (``EMAIL_URL``)."""

from __future__ import annotations

import smtplib

import django
from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.core.mail.backends.base import BaseEmailBackend

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
    SMTP conversation; without one the configured one applies (``EMAIL_TIMEOUT``).
    ``dedupe_key`` (the queued step's id) makes the ``Message-ID``, so a copy
    sent again after a worker died between the server's acceptance and the
    step's completion carries the same id and mail systems can tell.
    """
    connection = _connection(timeout)
    headers = {"Message-ID": f"<{dedupe_key}@orders.invalid>"} if dedupe_key else None
    message = EmailMessage(
        subject, body, settings.DEFAULT_FROM_EMAIL, [order.owner.email], headers=headers
    )
    try:
        connection.send_messages([message])
    except (smtplib.SMTPException, OSError) as exc:
        # An outage of the mail server is expected, not a bug: report it with a
        # stable code instead of a traceback.
        raise ServiceUnavailable(
            f"The email could not be sent: {type(exc).__name__}.", code="email_unavailable"
        ) from exc


def _connection(timeout: float | None) -> BaseEmailBackend:
    """The default mailer; ``timeout`` (a step's budget) replaces its own."""
    if django.VERSION < (6, 1):
        return get_connection(timeout=settings.EMAIL_TIMEOUT if timeout is None else timeout)
    # Django 6.1: MAILERS (config/settings.py), get_connection() is deprecated.
    from django.core.mail import mailers

    connection = mailers.default
    if timeout is not None:
        connection.timeout = timeout  # type: ignore[attr-defined]
    return connection


def owner_has_email(ctx: CreateOrderContext | CancelOrderContext) -> bool:
    """Condition of the email steps: there is an address to write to."""
    return ctx.order is not None and bool(ctx.order.owner.email)
