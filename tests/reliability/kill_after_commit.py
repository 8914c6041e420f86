"""Settings for crash tests: a web worker dies right after its run commits.

A request with the header ``X-Kill-After-Commit`` kills its own worker process
(SIGKILL) as soon as the transaction that queued after-commit steps commits:
before the response is written and, with a backend outside the database,
before the steps are dispatched. Only the tests' servers load this module
(``DJANGO_SETTINGS_MODULE=tests.reliability.kill_after_commit``).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import Any

from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse

from config.settings import *  # noqa: F403
from config.settings import MIDDLEWARE

MIDDLEWARE = [*MIDDLEWARE, "tests.reliability.kill_after_commit.KillAfterCommit"]


def _kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class KillAfterCommit:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if "X-Kill-After-Commit" not in request.headers:
            return self.get_response(request)

        def arm_on_queue_insert(execute: Any, sql: str, params: Any, many: bool, context: Any):
            # On PostgreSQL the insert is part of the run's last statement (orchestration.batch).
            if 'INSERT INTO "orchestration_queuedstep"' in sql:
                # Registered inside the run's transaction, before the dispatch: runs first.
                transaction.on_commit(_kill_self)
            return execute(sql, params, many, context)

        with connection.execute_wrapper(arm_on_queue_insert):
            return self.get_response(request)
