"""Page numbers: one positive integer, as the schema says; anything else is a 400."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from orders.models import Product

pytestmark = pytest.mark.django_db


@pytest.fixture
def catalogue(make_product: Callable[..., Product]) -> list[Product]:
    return [make_product() for _ in range(25)]  # two pages of 20


def get(query: str) -> Any:
    return APIClient().get(f"/api/products/{query}")


@pytest.mark.parametrize("query", ["", "?page=1", "?page=01"])
def test_no_page_or_page_one_is_the_first_page(catalogue: list[Product], query: str) -> None:
    response = get(query)

    assert response.status_code == 200
    assert response.json()["count"] == 25
    assert len(response.json()["results"]) == 20


def test_page_two_is_the_rest(catalogue: list[Product]) -> None:
    response = get("?page=2")

    assert response.status_code == 200
    assert len(response.json()["results"]) == 5


@pytest.mark.parametrize(
    "query",
    [
        "?page=",
        "?page=false&page=",
        "?page=0",
        "?page=-1",
        "?page=1.0",
        "?page=last",
        "?page=%EF%BC%91",  # a fullwidth digit one: a decimal to Python, not to the schema
        "?page=1&page=2",
    ],
)
def test_a_page_that_is_not_one_positive_integer_is_a_400(
    catalogue: list[Product], query: str
) -> None:
    response = get(query)

    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == "validation_failed"
    assert list(body["error"]["details"]) == ["page"]


@pytest.mark.parametrize("page", ["3", "9" * 30, "9" * 5000])
def test_a_page_past_the_last_is_a_404(catalogue: list[Product], page: str) -> None:
    response = get(f"?page={page}")

    assert response.status_code == 404
    assert response.json()["success"] is False


def test_the_orders_list_is_as_strict(user: Any) -> None:
    client = APIClient()
    client.force_authenticate(user)

    assert client.get("/api/orders/?page=").status_code == 400
    assert client.get("/api/orders/?page=1").status_code == 200
