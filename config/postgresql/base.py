"""PostgreSQL with a client-side deadline on every round trip.

libpq bounds most waits itself, from ``OPTIONS`` (config/settings.py):
``connect_timeout`` for connecting, TCP keepalives and ``tcp_user_timeout`` for
a peer that vanished from the network, and the server's ``statement_timeout``
for a slow statement. One wait remains unbounded: a server that is stopped, or a
path that swallows packets while a kernel still acknowledges them, never
answers and never resets the connection. So every query, commit and rollback
here also runs under ``socket_deadline``: past ``QUERY_DEADLINE`` seconds (the
``DATABASES`` entry; settings derive it from ``DATABASE_STATEMENT_TIMEOUT``) the
socket is shut down and psycopg raises ``OperationalError``.

Whatever fails here fails inside Django's ``wrap_database_errors``: the caller
gets ``django.db.OperationalError`` (which the API answers as a JSON 503) and
the connection is marked as having errors, so that Django closes it at the end
of the request instead of handing it to the next one. ``is_usable`` answers the
question Django asks it, yes or no, and never raises: it runs in the
``request_started`` signal, outside any handler that could turn an exception
into a response.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django_prometheus.db.backends.postgresql import base

from orchestration.deadlines import socket_deadline

#: A health check is ``SELECT 1``: a server that needs longer than this is not healthy.
HEALTH_CHECK_DEADLINE = 2.0


class DatabaseWrapper(base.DatabaseWrapper):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.query_deadline: float | None = self.settings_dict.get("QUERY_DEADLINE")
        if self.query_deadline:
            self.execute_wrappers.append(self._bounded_execute)

    def _bounded(self, seconds: float | None, call: Callable[[], Any]) -> Any:
        if not seconds or self.connection is None:
            return call()
        with self.wrap_database_errors:
            # A lost connection has no socket any more: fileno() raises psycopg's
            # OperationalError, which the block above turns into Django's.
            fileno = self.connection.fileno()
            with socket_deadline(fileno, seconds):
                return call()

    def _bounded_execute(
        self, execute: Callable[..., Any], sql: Any, params: Any, many: bool, context: Any
    ) -> Any:
        return self._bounded(self.query_deadline, lambda: execute(sql, params, many, context))

    def init_connection_state(self) -> None:
        self._bounded(self.query_deadline, super().init_connection_state)

    def _commit(self) -> None:
        self._bounded(self.query_deadline, super()._commit)

    def _rollback(self) -> None:
        self._bounded(self.query_deadline, super()._rollback)

    def is_usable(self) -> bool:
        if self.connection is None:
            return False
        try:
            return bool(self._bounded(HEALTH_CHECK_DEADLINE, super().is_usable))
        except Exception:
            # The socket is gone (a restarted server) or the check ran out of time.
            return False
