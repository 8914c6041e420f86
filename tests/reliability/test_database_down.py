"""The database is unreachable: 503 in the error shape, never a 500 page.

The shared database is never stopped: a gunicorn is pointed at a closed
loopback port instead, and the in-process test moves the test connection to an
address where nothing answers for the duration of one request.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import jwt
import pytest
from django.db import OperationalError, connection
from rest_framework.test import APIClient

from orders.models import Order, Product
from tests.servers import app_env, free_port, http_request, running_gunicorn

SIGNING_KEY = "database-down-test-signing-key-0123456789abcdef"


def access_token(user_id: int, key: str = SIGNING_KEY) -> str:
    now = int(time.time())
    claims = {
        "token_type": "access",
        "user_id": str(user_id),
        "jti": uuid.uuid4().hex,
        "iat": now,
        "exp": now + 300,
    }
    return jwt.encode(claims, key, algorithm="HS256")


def assert_unavailable_envelope(status: int, raw: bytes) -> None:
    assert status == 503, raw
    body = json.loads(raw)
    assert body["success"] is False
    assert body["error"]["code"] == "database_unavailable"
    assert body["request_id"]


@pytest.mark.integration
def test_server_with_unreachable_database_answers_503(tmp_path: Path) -> None:
    env = app_env(
        database_url=f"postgres://postgres@127.0.0.1:{free_port()}/unreachable",
        JWT_SIGNING_KEY=SIGNING_KEY,
    )
    with running_gunicorn(env, workers=1, log_dir=tmp_path) as server:
        status, _, raw = http_request(f"{server.url}/health/")
        assert status == 200, raw
        status, _, raw = http_request(f"{server.url}/ready/")
        assert status == 503, raw
        assert json.loads(raw)["status"] == "unavailable"

        headers = {"Authorization": f"Bearer {access_token(1)}"}
        body = {"items": [{"product": 1, "quantity": 1}], "payment_token": "tok_visa"}
        status, _, raw = http_request(
            f"{server.url}/api/orders/", method="POST", json_body=body, headers=headers
        )
        assert_unavailable_envelope(status, raw)
        status, _, raw = http_request(
            f"{server.url}/api/orders/1/cancel/", method="POST", headers=headers
        )
        assert_unavailable_envelope(status, raw)
        status, _, raw = http_request(f"{server.url}/api/products/")
        assert_unavailable_envelope(status, raw)
        assert b"Traceback" not in raw


@contextmanager
def database_unreachable() -> Iterator[None]:
    """Point the default connection at an address where no database answers.

    SQLite's in-memory test database cannot be reopened under another name, so
    there the connection attempt itself is made to fail as SQLite's would.
    """
    if connection.vendor == "sqlite":
        failure = OperationalError("unable to open database file")
        with mock.patch.object(connection, "ensure_connection", side_effect=failure):
            yield
        return
    original = dict(connection.settings_dict)
    connection.close()
    connection.settings_dict.update(HOST="127.0.0.1", PORT=str(free_port()))
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(original)


@pytest.mark.django_db(transaction=True)
def test_pipeline_answers_503_envelope_when_the_database_goes_away(
    django_user_model: Any,
) -> None:
    user = django_user_model.objects.create_user("dbdown", "dbdown@example.com", "irrelevant-pw")
    product = Product.objects.create(sku="DOWN-1", name="Down", price="3.00", stock=5)
    client = APIClient()
    client.force_authenticate(user)  # no token lookup: the failure must come from the pipeline
    body = {"items": [{"product": product.pk, "quantity": 1}], "payment_token": "tok_visa"}

    with database_unreachable():
        response = client.post("/api/orders/", body, format="json")
        ready = client.get("/ready/")

    assert response.status_code == 503, response.content
    payload = response.json()
    assert payload["success"] is False
    assert payload["error"]["code"] == "database_unavailable"
    assert payload["error"]["step"] == "transaction"  # BEGIN failed: no step ran
    assert ready.status_code == 503
    # The connection comes back once the database does, and nothing was written.
    assert Order.objects.count() == 0
    assert Product.objects.get(pk=product.pk).stock == 5
