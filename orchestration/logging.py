"""Logging glue: every record carries the id of the request (and trace) it belongs to."""

from __future__ import annotations

import logging

from orchestration.context import current_request_id
from orchestration.tracing import current_trace_id


class RequestIdFilter(logging.Filter):
    """Set ``record.request_id`` from the current request ("-" outside one) and
    ``record.trace_id`` from the current OpenTelemetry span ("-" without one).

    ``django.request`` logs a 4xx/5xx once the middleware has finished, so the
    request id is taken from the request that Django attaches to the record.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            request_id = getattr(getattr(record, "request", None), "request_id", None)
            record.request_id = request_id or current_request_id.get() or "-"
        if not getattr(record, "trace_id", None):
            record.trace_id = current_trace_id() or "-"
        return True


class SkipLoggedErrorResponses(logging.Filter):
    """For ``django.server`` (runserver's access log): drop the 4xx/5xx lines.

    ``django.request`` has already logged each of them, with the request id,
    so runserver would otherwise print every error response twice. Other
    records (successful requests, the server's own errors) pass.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        is_access_line = bool(record.args)
        return not (is_access_line and getattr(record, "status_code", 0) >= 400)
