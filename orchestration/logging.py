"""Logging glue: every record carries the id of the request (and trace) it belongs to."""

from __future__ import annotations

import logging

from orchestration.context import current_request_id
from orchestration.tracing import current_trace_id


class RequestIdFilter(logging.Filter):
    """Set ``record.request_id`` from the current request ("-" outside one) and
    ``record.trace_id`` from the current OpenTelemetry span ("-" without one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = current_request_id.get() or "-"
        if not getattr(record, "trace_id", None):
            record.trace_id = current_trace_id() or "-"
        return True
