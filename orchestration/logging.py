"""Logging glue: every record carries the id of the request it belongs to."""

from __future__ import annotations

import logging

from orchestration.context import current_request_id


class RequestIdFilter(logging.Filter):
    """Set ``record.request_id`` from the current request ("-" outside one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = current_request_id.get() or "-"
        return True
