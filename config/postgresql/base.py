"""PostgreSQL with a client-side deadline on every round trip.

``statement_timeout`` is enforced by the server, so a server that is stopped
(or a network path that swallows packets while the kernel still acknowledges
them) would hold a request until the worker is killed. Every query, commit,
rollback and health check here also runs under ``socket_deadline``: past
``QUERY_DEADLINE`` seconds (the ``DATABASES`` entry; settings derive it from
``DATABASE_STATEMENT_TIMEOUT``) the socket is shut down and psycopg raises
``OperationalError``, which the API answers as a JSON 503.
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
        with socket_deadline(self.connection.fileno(), seconds):
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
        return bool(self._bounded(HEALTH_CHECK_DEADLINE, super().is_usable))
