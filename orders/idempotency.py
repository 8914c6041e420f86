"""``Idempotency-Key`` for order requests: the header, the stored response, replays.

A key belongs to one user. The pipeline records the key in the order's own
transaction (``claim_idempotency_key``), so only a request that succeeded
consumes it; the view then stores the response and replays it for any retry
with the same key and the same body. The same key with another body is a 409.
"""

from __future__ import annotations

import re
from typing import Any

from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.response import Response

from orders.models import IdempotencyRecord

HEADER = "Idempotency-Key"
REPLAY_HEADER = "Idempotent-Replayed"

#: Visible ASCII only: the key is echoed in logs and compared byte for byte.
WELL_FORMED_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")

KEY_REUSED = (
    "idempotency_key_reused",
    (
        "This Idempotency-Key was already used with a different request body; "
        "use a new key for a new request."
    ),
)
IN_PROGRESS = (
    "idempotency_request_in_progress",
    (
        "A request with this Idempotency-Key is still being processed; retry shortly "
        "to receive its response."
    ),
)


class IdempotencyConflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = KEY_REUSED[0]
    default_detail = KEY_REUSED[1]


def read_idempotency_key(request: Request) -> str | None:
    """The request's key, None without the header; a malformed key is a 400."""
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not WELL_FORMED_KEY.match(key):
        raise exceptions.ValidationError(
            {HEADER: ["Must be 1 to 255 visible ASCII characters (a UUID is a good choice)."]}
        )
    return key


def find_conflict(record: IdempotencyRecord, fingerprint: str) -> tuple[str, str] | None:
    """(code, message) when ``record`` cannot answer a request with ``fingerprint``."""
    if record.fingerprint != fingerprint:
        return KEY_REUSED
    if record.response_status is None:
        return IN_PROGRESS
    return None


def find_stored_response(user: Any, key: str, fingerprint: str) -> Response | None:
    """The stored response for ``key``; None when the key is new; 409 when it cannot be used."""
    record = IdempotencyRecord.objects.filter(user=user, key=key).first()
    if record is None:
        return None
    conflict = find_conflict(record, fingerprint)
    if conflict is not None:
        code, message = conflict
        raise IdempotencyConflict(detail=message, code=code)
    response = Response(record.response_body, status=record.response_status)
    response[REPLAY_HEADER] = "true"
    return response


def store_response(user: Any, key: str, response: Response) -> None:
    IdempotencyRecord.objects.filter(user=user, key=key).update(
        response_status=response.status_code, response_body=response.data
    )
