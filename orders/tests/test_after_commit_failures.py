"""A committed order is never answered with an error (docs/guarantees.md)."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest
from django.db import OperationalError
from rest_framework.test import APIClient

from orders.models import Order, Product
from orders.payments import FakeGateway
from orders.tests.support import order_body

ORDERS = "/api/orders/"


def post(client: APIClient, body: Any, key: str | None = None) -> Any:
    headers = {} if key is None else {"HTTP_IDEMPOTENCY_KEY": key}
    return client.post(ORDERS, body, format="json", **headers)


def database_gone(*args: Any, **kwargs: Any) -> None:
    raise OperationalError("server closed the connection unexpectedly")


@pytest.mark.django_db
@pytest.mark.parametrize("key", [None, "after-commit-1"])
def test_a_failure_while_the_answer_is_built_still_answers_201(
    api_client: APIClient, keyboard: Product, gateway: FakeGateway, key: str | None
) -> None:
    body = order_body((keyboard, 2))
    with mock.patch("orders.views.prefetch_related_objects", database_gone):
        response = post(api_client, body, key)

    assert response.status_code == 201
    placed = response.json()
    order = Order.objects.get()
    assert placed["success"] is True
    assert placed["data"] == {"id": order.pk, "status": "paid", "total": "178.00"}
    [warning] = placed["warnings"]
    assert warning["code"] == "response_incomplete"
    assert f"/api/orders/{order.pk}/" in warning["message"]
    assert len(gateway.charges) == 1
    assert api_client.get(f"{ORDERS}{order.pk}/").json()["items"][0]["quantity"] == 2
    if key is not None:
        # The incomplete answer was not stored: a retry rebuilds the whole order.
        again = post(api_client, body, key)
        assert again.status_code == 201
        assert again["Idempotent-Replayed"] == "true"
        assert again.json()["data"]["items"][0]["quantity"] == 2
        assert Order.objects.count() == 1
        assert len(gateway.charges) == 1


@pytest.mark.django_db
def test_a_failure_to_store_the_replay_still_answers_201_and_the_key_finds_the_order(
    api_client: APIClient, keyboard: Product, gateway: FakeGateway
) -> None:
    body = order_body((keyboard, 1))
    with mock.patch("orders.idempotency.store_response", database_gone):
        first = post(api_client, body, "store-fails")

    assert first.status_code == 201
    assert first.json()["warnings"] == []
    again = post(api_client, body, "store-fails")
    assert again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert again.json()["data"] == first.json()["data"]
    assert Order.objects.count() == 1
    assert len(gateway.charges) == 1
