"""``Idempotency-Key`` for order requests: the header, the stored response, replays.

A key belongs to one user. The pipeline records the key in the order's own
transaction (``claim_idempotency_key``), so only a request that succeeded
consumes it; the view then stores the response and replays it for any retry
with the same key and the same body. The same key with another body is a 409.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from django.db.models import prefetch_related_objects
from django.utils import timezone
from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.response import Response

from orchestration import Conflict, OrchestratorResult
from orchestration.context import current_request_id, new_request_id
from orchestration.drf import envelope_response
from orders.models import IdempotencyRecord, Order
from orders.serializers import OrderSerializer

HEADER = "Idempotency-Key"
REPLAY_HEADER = "Idempotent-Replayed"

#: Visible ASCII only: the key is echoed in logs and compared byte for byte. The
#: schema states this rule (pattern and length) as the header's.
MAX_KEY_LENGTH = 255
WELL_FORMED_KEY = re.compile(rf"^[\x21-\x7e]{{1,{MAX_KEY_LENGTH}}}$")

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
    if record.response_status is None and record.order_id is None:
        return IN_PROGRESS
    return None


def find_stored_response(user: Any, key: str, fingerprint: str) -> Response | None:
    """The stored response for ``key``; None when the key is new; 409 when it cannot be used."""
    record = IdempotencyRecord.objects.filter(user=user, key=key).select_related("order").first()
    if record is None:
        return None
    conflict = find_conflict(record, fingerprint)
    if conflict is not None:
        code, message = conflict
        raise Conflict(message, code=code)
    if record.response_status is None:
        # The order committed but the process stopped before storing the response.
        assert record.order is not None  # find_conflict: no response and no order is a 409
        store_response(user, key, rebuild_response(record.order))
        record.refresh_from_db()
    response = Response(record.response_body, status=record.response_status)
    response[REPLAY_HEADER] = "true"
    return response


def rebuild_response(order: Order) -> Response:
    """The success envelope of a committed order whose original response was lost.

    Its pipeline timings are gone with the original response: ``metrics`` is
    empty and ``duration`` zero, while ``data`` is the order as stored.
    """
    prefetch_related_objects([order], "items__product")
    result = OrchestratorResult(
        success=True,
        orchestrator="create_order",
        request_id=current_request_id.get() or new_request_id(),
        data=OrderSerializer(order).data,
    )
    return envelope_response(result, success_status=status.HTTP_201_CREATED)


def store_response(user: Any, key: str, response: Response) -> None:
    IdempotencyRecord.objects.filter(user=user, key=key).update(
        response_status=response.status_code, response_body=response.data
    )


def purge_records(*, older_than: timedelta, dry_run: bool = False) -> int:
    """Delete the keys stored longer than ``older_than`` ago; how many (would) go.

    A purged key can be used again for a new request: keep records at least as
    long as clients may retry.
    """
    stale = IdempotencyRecord.objects.filter(created__lt=timezone.now() - older_than)
    if dry_run:
        return stale.count()
    deleted, _ = stale.delete()
    return deleted
