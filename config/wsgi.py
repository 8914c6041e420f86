"""The WSGI application, with a last line of defence for the API's error shape.

Django turns every exception a view or middleware raises into a response. What
runs before its handler, the ``request_started`` signal (``close_old_connections``
among its receivers), is outside it: an exception there would reach gunicorn,
which answers its own HTML 500 page. Here it becomes the error envelope: a JSON
503 ``database_unavailable`` for a database error, a JSON 500 otherwise.
"""

import json
import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

from django.core.wsgi import get_wsgi_application
from django.db import DatabaseError

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

logger = logging.getLogger("django.request")

django_application = get_wsgi_application()


def _envelope(code: str, message: str) -> bytes:
    error: dict[str, Any] = {"step": None, "code": code, "message": message, "details": {}}
    return json.dumps({"success": False, "error": error, "request_id": None}).encode()


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    try:
        return django_application(environ, start_response)
    except Exception as exc:
        logger.exception(
            "%s %s failed before Django's handler",
            environ.get("REQUEST_METHOD"),
            environ.get("PATH_INFO"),
        )
        if isinstance(exc, DatabaseError):
            status = "503 Service Unavailable"
            body = _envelope(
                "database_unavailable", "The database is unavailable; try again shortly."
            )
        else:
            status = "500 Internal Server Error"
            body = _envelope("internal_error", "The server failed to answer.")
        start_response(
            status,
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        )
        return [body]
