"""A step's database scope: its savepoint and its statement budget, opened by its
first query.

A best-effort or retried step runs in a savepoint, so that its failure undoes
its own writes only; a step with a time budget bounds its queries with
``statement_timeout`` on PostgreSQL. Both cost round trips (``SAVEPOINT`` and
``RELEASE``, two ``set_config`` calls), and many such steps never query the
database at all: a payment call, an email, an HTTP quote. So ``StepScope``
opens them lazily: it watches the step's queries (``connection.execute_wrapper``)
and sends ``SAVEPOINT`` and ``set_config`` just before the first one. A step
that sends no query sends none of them.

The rules match ``transaction.atomic()`` nested in the run's transaction:

- on success the savepoint is released and the run's statement timeout restored;
- on failure (or when the step swallowed a database error that left the
  transaction needing a rollback) the transaction is rolled back to the
  savepoint, which also restores the timeout, and the ``on_commit`` callbacks
  the step registered are dropped;
- outside a transaction (an orchestrator with ``atomic = False``) there is no
  savepoint to open lazily: the step gets a transaction of its own, as
  ``atomic()`` gives it (psycopg begins it only at the first query, so an idle
  one costs nothing there either); the budget is set for the session and
  restored.

Elsewhere than PostgreSQL the budget does nothing.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

from django.db import DatabaseError, connections, transaction

__all__ = ["StepScope"]


class StepScope:
    """``with StepScope(using, savepoint=True, deadline=...)``: one step attempt's scope.

    ``deadline`` is a ``time.perf_counter()`` value: the statement timeout set at
    the first query is the time left then. ``opened`` tells whether the step
    queried the database (and so paid for its scope).
    """

    __slots__ = (
        "_atomic",
        "_callbacks",
        "_connection",
        "_previous_timeout",
        "_sid",
        "_unwatch",
        "deadline",
        "opened",
        "savepoint",
        "using",
    )

    def __init__(self, using: str, *, savepoint: bool, deadline: float | None = None) -> None:
        self.using = using
        self.savepoint = savepoint
        self.deadline = deadline
        self.opened = False
        self._connection: Any = None
        self._atomic: Any = None
        self._sid: str | None = None
        self._previous_timeout: str | None = None
        self._callbacks = 0
        self._unwatch: Any = None

    def __enter__(self) -> StepScope:
        connection = self._connection = connections[self.using]
        budget = self.deadline is not None and connection.vendor == "postgresql"
        if not (self.savepoint or budget):
            return self
        if self.savepoint and not connection.in_atomic_block:
            # No transaction to hold a savepoint: the step gets a transaction of its own.
            self._atomic = transaction.atomic(using=self.using)
            self._atomic.__enter__()
        self._callbacks = len(connection.run_on_commit)
        self._unwatch = connection.execute_wrapper(self._before_query)
        self._unwatch.__enter__()
        return self

    def _before_query(
        self, execute: Any, sql: str, params: Any, many: bool, context: dict[str, Any]
    ) -> Any:
        if not self.opened:
            self.opened = True  # first: the statements sent below come through here too
            self._open()
        return execute(sql, params, many, context)

    def _open(self) -> None:
        connection = self._connection
        if self.savepoint and self._atomic is None and connection.in_atomic_block:
            # None where the database has no savepoints: then, as atomic() does, none.
            self._sid = connection.savepoint()
            if self._sid is not None:
                connection.savepoint_ids.append(self._sid)
        if self.deadline is not None and connection.vendor == "postgresql":
            seconds = max(0.001, self.deadline - time.perf_counter())
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT current_setting('statement_timeout'), "
                    "set_config('statement_timeout', %s, %s)",
                    [f"{max(1, int(seconds * 1000))}ms", connection.in_atomic_block],
                )
                self._previous_timeout = cursor.fetchone()[0]

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._unwatch is None:
            return
        self._unwatch.__exit__(None, None, None)
        connection = self._connection
        failed = exc_type is not None or (self._sid is not None and connection.needs_rollback)
        if self._sid is not None:
            self._close_savepoint(failed)
        if failed and self._atomic is None and connection.in_atomic_block:
            # What the step asked to run on commit goes with it (rolling back to the
            # savepoint drops only the callbacks registered after its first query).
            del connection.run_on_commit[self._callbacks :]
        rolled_back = failed and (self._sid is not None or self._atomic is not None)
        if self._previous_timeout is not None and not rolled_back:
            self._restore_timeout()
        if self._atomic is not None:
            self._atomic.__exit__(exc_type, exc, traceback)

    def _close_savepoint(self, failed: bool) -> None:
        connection, sid = self._connection, self._sid
        connection.savepoint_ids.pop()
        if not failed:
            try:
                connection.savepoint_commit(sid)
            except DatabaseError:
                connection.needs_rollback = True
                raise
            return
        connection.needs_rollback = False
        try:
            # Also undoes the SET LOCAL of the budget, and drops the step's callbacks.
            connection.savepoint_rollback(sid)
            connection.savepoint_commit(sid)
        except DatabaseError:
            connection.needs_rollback = True

    def _restore_timeout(self) -> None:
        connection = self._connection
        try:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT set_config('statement_timeout', %s, %s)",
                    [self._previous_timeout, connection.in_atomic_block],
                )
        except DatabaseError:
            pass  # an aborted transaction drops its local setting when it rolls back
