"""The quote endpoints: the sync view (a parallel group on threads) and the async view."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from orchestration import Parallel
from orders.models import Product
from orders.orchestrators import QUOTE_BUDGET, AsyncQuote, Quote

QUOTE = "/api/orders/quote/"
QUOTE_ASYNC = "/api/orders/quote/async/"


@pytest.fixture(autouse=True)
def fast_services(settings: Any) -> None:
    settings.ORDERS_QUOTE_LATENCY = {"shipping": 0.02, "tax": 0.01}


def quote_body(*lines: tuple[Product, int], country: str = "FR") -> dict[str, Any]:
    return {
        "items": [{"product": product.pk, "quantity": quantity} for product, quantity in lines],
        "country": country,
    }


@pytest.mark.django_db
@pytest.mark.parametrize("url", [QUOTE, QUOTE_ASYNC])
def test_a_quote_prices_goods_shipping_and_tax(url: str, keyboard: Product, cable: Product):
    response = APIClient().post(url, quote_body((keyboard, 2), (cable, 3)), format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["success"] is True
    # 2 x 89.00 + 3 x 9.99; shipping in France 4.90 + 4 extra units x 0.50; VAT 20 % of the goods.
    assert body["data"] == {
        "country": "FR",
        "subtotal": "207.97",
        "shipping": "6.90",
        "tax": "41.59",
        "total": "256.46",
    }
    assert set(body["metrics"]) == {"validate_quote", "quotes", "quote_shipping", "quote_tax"}
    orchestrator = "quote" if url == QUOTE else "quote_async"
    assert f"{orchestrator}.quotes;dur=" in response["Server-Timing"]


@pytest.mark.django_db
def test_shipping_abroad_and_another_vat_rate(keyboard: Product):
    response = APIClient().post(QUOTE, quote_body((keyboard, 1), country="DE"), format="json")

    assert response.json()["data"] == {
        "country": "DE",
        "subtotal": "89.00",
        "shipping": "9.90",
        "tax": "16.91",
        "total": "115.81",
    }


@pytest.mark.django_db
@pytest.mark.parametrize("url", [QUOTE, QUOTE_ASYNC])
def test_invalid_quote_requests_are_400_with_field_errors(url: str, keyboard: Product):
    body = {**quote_body((keyboard, 1), country="US"), "payment_token": "tok_visa"}
    body["items"].append({"product": 999_999, "quantity": 1})

    response = APIClient().post(url, body, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["step"], error["code"]) == ("validate_quote", "validation_failed")
    assert set(error["details"]) == {"country", "items", "payment_token"}


@pytest.mark.django_db
@pytest.mark.parametrize("url", [QUOTE, QUOTE_ASYNC])
def test_a_tax_service_slower_than_its_budget_is_a_503(url: str, settings: Any, keyboard: Product):
    settings.ORDERS_QUOTE_LATENCY = {"shipping": 0.01, "tax": QUOTE_BUDGET * 2}

    response = APIClient().post(url, quote_body((keyboard, 1)), format="json")

    assert response.status_code == 503
    body = response.json()
    assert (body["error"]["step"], body["error"]["code"]) == ("quote_tax", "service_unavailable")
    assert "quote_shipping" in body["metrics"]


def test_the_async_view_answers_errors_in_the_envelope():
    client = APIClient()

    not_post = client.get(QUOTE_ASYNC)
    not_json = client.post(QUOTE_ASYNC, "items=1", content_type="text/plain")
    malformed = client.post(QUOTE_ASYNC, "{", content_type="application/json")

    assert (not_post.status_code, not_post["Allow"]) == (405, "POST")
    assert not_json.status_code == 415
    assert malformed.status_code == 400
    for response in (not_post, not_json, malformed):
        assert response.json()["success"] is False


@pytest.mark.django_db
def test_both_pipelines_declare_the_services_as_one_parallel_group():
    for orchestrator, asynchronous in ((Quote, False), (AsyncQuote, True)):
        _, group = orchestrator.get_pipeline()
        assert isinstance(group, Parallel)
        assert group.name == "quotes"
        assert [step.name for step in group.branches] == ["quote_shipping", "quote_tax"]
        assert all(step.is_async is asynchronous for step in group.branches)
