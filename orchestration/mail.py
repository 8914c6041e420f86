"""Django's SMTP email backend with an overall deadline.

The stock backend's ``timeout`` bounds each socket operation, so a server that
answers a byte at a time never trips it. Here ``timeout`` (``EMAIL_TIMEOUT``, or
the value passed to ``get_connection``) bounds the whole conversation, from
connecting to ``QUIT``: when it passes, the socket is shut down and smtplib
raises ``SMTPServerDisconnected`` (an ``OSError``) like for any dropped server.
"""

from __future__ import annotations

import smtplib
import socket
import time
from typing import Any

from django.core.mail.backends import smtp

from orchestration.deadlines import arm, release


class _Bounded:
    """Mixed into smtplib's classes: the socket is armed as soon as it exists."""

    _deadline: float
    _deadline_token: int | None = None

    def __init__(self, *args: Any, deadline: float, **kwargs: Any) -> None:
        self._deadline = deadline
        super().__init__(*args, **kwargs)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock: socket.socket = super()._get_socket(host, port, timeout)  # type: ignore[misc]
        remaining = max(0.0, self._deadline - time.monotonic())
        self._deadline_token = arm(sock.fileno(), remaining)
        return sock

    def close(self) -> None:
        if self._deadline_token is not None:
            release(self._deadline_token)
            self._deadline_token = None
        super().close()  # type: ignore[misc]


class _BoundedSMTP(_Bounded, smtplib.SMTP):
    pass


class _BoundedSMTPSSL(_Bounded, smtplib.SMTP_SSL):
    pass


class EmailBackend(smtp.EmailBackend):
    """``EMAIL_BACKEND`` for SMTP with ``timeout`` as an overall deadline per connection."""

    _deadline: float | None = None

    def open(self) -> bool | None:
        self._deadline = time.monotonic() + self.timeout if self.timeout else None
        return super().open()

    @property
    def connection_class(self) -> Any:
        kind = _BoundedSMTPSSL if self.use_ssl else _BoundedSMTP
        deadline = self._deadline
        if deadline is None:
            return super().connection_class

        def connect(host: str, port: int, **params: Any) -> smtplib.SMTP:
            return kind(host, port, deadline=deadline, **params)

        return connect
