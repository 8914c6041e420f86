"""The Idempotency-Key header of POST /api/orders/."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.db import connection, connections
from rest_framework.test import APIClient

from orders.models import IdempotencyRecord, Order, Product
from orders.payments import FakeGateway
from orders.tests.support import obtain_token, order_body, stock_levels
from orders.types import CreateOrderInput

ORDERS = "/api/orders/"


def idempotency_fingerprint(body: Any) -> str:
    return CreateOrderInput(data=body).fingerprint


def post(client: APIClient, body: Any, key: str) -> Any:
    return client.post(ORDERS, body, format="json", HTTP_IDEMPOTENCY_KEY=key)


@pytest.mark.django_db
def test_same_key_and_body_replays_the_first_response(
    api_client: APIClient, keyboard: Product, gateway: FakeGateway
) -> None:
    body = order_body((keyboard, 2))

    first = post(api_client, body, "order-2024-0001")
    again = post(api_client, body, "order-2024-0001")

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert Order.objects.count() == 1
    assert len(gateway.charges) == 1
    assert stock_levels() == {keyboard.pk: 3}


@pytest.mark.django_db
def test_a_replay_names_the_placing_request_in_its_body_and_itself_in_the_header(
    api_client: APIClient, keyboard: Product
) -> None:
    body = order_body((keyboard, 1))
    placing, retry = "placing-request-0001", "retrying-request-0002"

    first = api_client.post(
        ORDERS, body, format="json", HTTP_IDEMPOTENCY_KEY="k-ids", HTTP_X_REQUEST_ID=placing
    )
    again = api_client.post(
        ORDERS, body, format="json", HTTP_IDEMPOTENCY_KEY="k-ids", HTTP_X_REQUEST_ID=retry
    )

    assert (first["X-Request-ID"], first.json()["request_id"]) == (placing, placing)
    # The body is the first response verbatim: its id finds the run that placed the order.
    assert (again["X-Request-ID"], again.json()["request_id"]) == (retry, placing)


@pytest.mark.django_db
def test_key_order_and_spacing_of_the_body_do_not_matter(
    api_client: APIClient, keyboard: Product
) -> None:
    body = order_body((keyboard, 1))
    compact = json.dumps(body, separators=(",", ":"))
    reordered = json.dumps(dict(reversed(body.items())), indent=4)

    first = api_client.generic(
        "POST", ORDERS, compact, content_type="application/json", HTTP_IDEMPOTENCY_KEY="k-1"
    )
    again = api_client.generic(
        "POST", ORDERS, reordered, content_type="application/json", HTTP_IDEMPOTENCY_KEY="k-1"
    )

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert Order.objects.count() == 1


@pytest.mark.django_db
def test_same_key_with_another_body_is_409(
    api_client: APIClient, keyboard: Product, cable: Product
) -> None:
    post(api_client, order_body((keyboard, 1)), "order-2024-0002")

    response = post(api_client, order_body((cable, 1)), "order-2024-0002")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert Order.objects.count() == 1
    assert stock_levels() == {keyboard.pk: 4, cable.pk: 100}


@pytest.mark.django_db
def test_keys_belong_to_one_user(
    api_client: APIClient, other_client: APIClient, keyboard: Product
) -> None:
    body = order_body((keyboard, 1))

    mine = post(api_client, body, "shared-key")
    theirs = post(other_client, body, "shared-key")

    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert mine.json()["data"]["id"] != theirs.json()["data"]["id"]
    assert Order.objects.count() == 2


@pytest.mark.django_db
def test_a_failed_request_does_not_consume_its_key(
    api_client: APIClient, keyboard: Product
) -> None:
    declined = post(api_client, order_body((keyboard, 1), token="tok_declined"), "retry-me")
    paid = post(api_client, order_body((keyboard, 1), token="tok_visa"), "retry-me")

    assert (declined.status_code, paid.status_code) == (402, 201)
    assert Order.objects.count() == 1


@pytest.mark.django_db
def test_a_lost_response_is_rebuilt_from_the_committed_order(
    api_client: APIClient, keyboard: Product, gateway: FakeGateway
) -> None:
    body = order_body((keyboard, 1))
    first = post(api_client, body, "lost-response")
    # What a retry finds when the process stopped between the commit and storing the response.
    IdempotencyRecord.objects.filter(key="lost-response").update(
        response_status=None, response_body=None
    )

    rebuilt = post(api_client, body, "lost-response")
    again = post(api_client, body, "lost-response")

    assert (first.status_code, rebuilt.status_code, again.status_code) == (201, 201, 201)
    assert rebuilt.json()["data"] == first.json()["data"]
    assert rebuilt["Idempotent-Replayed"] == "true"
    assert again.json() == rebuilt.json()
    assert Order.objects.count() == 1
    assert len(gateway.charges) == 1


@pytest.mark.django_db
def test_a_key_claimed_by_an_uncommitted_request_is_409(
    api_client: APIClient, user: Any, keyboard: Product
) -> None:
    body = order_body((keyboard, 1))
    # A record with neither an order nor a response: another request holds the key.
    IdempotencyRecord.objects.create(
        user=user, key="in-flight", fingerprint=idempotency_fingerprint(body)
    )

    response = post(api_client, body, "in-flight")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_request_in_progress"
    assert Order.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["", "has space", "x" * 256, "caf\u00e9"])
def test_a_malformed_key_is_400(api_client: APIClient, keyboard: Product, key: str) -> None:
    response = api_client.post(
        ORDERS, order_body((keyboard, 1)), format="json", HTTP_IDEMPOTENCY_KEY=key
    )

    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["error"]["details"]
    assert Order.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_concurrent_retries_with_one_key_create_one_order(
    user: Any, keyboard: Product, gateway: FakeGateway
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip(
            "SQLite serialises writers with one database lock instead of making the "
            "second insert of a key wait for the first transaction, which is what this tests."
        )
    header = f"Bearer {obtain_token(APIClient(), user.username)}"
    attempts = 6
    start = threading.Barrier(attempts, timeout=30)

    def send(_: int) -> Any:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=header)
        try:
            start.wait()
            return post(client, order_body((keyboard, 1)), "double-click")
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=attempts) as pool:
        responses = list(pool.map(send, range(attempts)))

    created = [r.json() for r in responses if r.status_code == 201]
    refused = [r.json()["error"]["code"] for r in responses if r.status_code == 409]
    assert len(created) + len(refused) == attempts
    assert created
    assert all(body == created[0] for body in created)
    assert set(refused) <= {"idempotency_request_in_progress"}
    assert Order.objects.count() == 1
    assert len(gateway.charges) == 1
    assert stock_levels() == {keyboard.pk: 4}
