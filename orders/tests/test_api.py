"""The orders API over HTTP, authenticated with tokens from the real JWT endpoint."""

from __future__ import annotations

import errno
import socket
import time
from decimal import Decimal
from typing import Any

import django
import jwt
import pytest
from prometheus_client import REGISTRY
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from orchestration.models import QueuedStep
from orchestration.testing import run_queued_steps
from orders.models import Order, Product
from orders.payments import FakeGateway
from orders.tests.support import assert_nothing_written, order_body, stock_levels

ORDERS = "/api/orders/"


def place(client: APIClient, *lines: tuple[Product, int], token: str = "tok_visa") -> Any:
    return client.post(ORDERS, order_body(*lines, token=token), format="json")


# -- placing an order ---------------------------------------------------------------


@pytest.mark.django_db
def test_create_order_answers_with_the_envelope(
    api_client: APIClient, user: Any, keyboard: Product, cable: Product
) -> None:
    response = place(api_client, (keyboard, 2), (cable, 3))

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["success"] is True
    order = Order.objects.get()
    assert body["data"]["id"] == order.pk
    assert body["data"]["status"] == "paid"
    assert body["data"]["total"] == "207.97"
    assert [
        (item["sku"], item["quantity"], item["line_total"]) for item in body["data"]["items"]
    ] == [
        (keyboard.sku, 2, "178.00"),
        (cable.sku, 3, "29.97"),
    ]
    assert order.owner == user
    assert isinstance(body["duration"], float)
    assert set(body["metrics"]) >= {"validate_order", "reserve_stock", "charge_payment"}
    assert all(isinstance(ms, float) for ms in body["metrics"].values())
    assert body["warnings"] == []
    assert body["request_id"] == response["X-Request-ID"]


@pytest.mark.django_db
def test_server_timing_header_lists_the_steps(api_client: APIClient, keyboard: Product) -> None:
    response = place(api_client, (keyboard, 1))

    entries = [entry.split(";")[0] for entry in response["Server-Timing"].split(", ")]
    assert entries[:2] == ["total", "create_order"]
    assert {"create_order.validate_order", "create_order.charge_payment"} <= set(entries)


@pytest.mark.django_db
def test_declined_payment_is_402_and_writes_nothing(
    api_client: APIClient, keyboard: Product, gateway: FakeGateway
) -> None:
    before = stock_levels()

    response = place(api_client, (keyboard, 2), token="tok_declined")

    assert response.status_code == 402
    error = response.json()["error"]
    assert (error["step"], error["code"]) == ("charge_payment", "payment_declined")
    assert_nothing_written(before)
    assert gateway.charges == {}


@pytest.mark.django_db
def test_unavailable_gateway_is_retried_then_503(api_client: APIClient, keyboard: Product) -> None:
    before = stock_levels()

    response = place(api_client, (keyboard, 1), token="tok_unavailable")

    assert response.status_code == 503
    body = response.json()
    assert (body["error"]["step"], body["error"]["code"]) == (
        "charge_payment",
        "payment_gateway_unavailable",
    )
    assert "charge_payment" in body["metrics"]
    assert_nothing_written(before)


@pytest.mark.django_db
def test_out_of_stock_is_409_and_writes_nothing(api_client: APIClient, keyboard: Product) -> None:
    before = stock_levels()

    response = place(api_client, (keyboard, 6))

    assert response.status_code == 409
    error = response.json()["error"]
    assert (error["step"], error["code"]) == ("reserve_stock", "out_of_stock")
    assert error["details"] == {"items": [{"product": keyboard.pk, "requested": 6, "available": 5}]}
    assert_nothing_written(before)


def find_closed_port() -> int:
    """A local port with nothing listening, checked by a refused connection."""
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) == errno.ECONNREFUSED
    return port


@pytest.mark.django_db(transaction=True)
def test_smtp_outage_still_places_the_order(
    api_client: APIClient, keyboard: Product, settings: Any
) -> None:
    if django.VERSION >= (6, 1):  # MAILERS replaces the EMAIL_* settings
        settings.MAILERS = {
            "default": {
                "BACKEND": "orchestration.mail.EmailBackend",
                "OPTIONS": {"host": "127.0.0.1", "port": find_closed_port()},
            }
        }
    else:
        settings.EMAIL_BACKEND = "orchestration.mail.EmailBackend"
        settings.EMAIL_HOST = "127.0.0.1"
        settings.EMAIL_PORT = find_closed_port()
        settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
        settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    labels = {
        "orchestrator": "create_order",
        "step": "send_confirmation",
        "critical": "false",
        "code": "email_unavailable",
    }
    failures_before = REGISTRY.get_sample_value("orchestrator_step_failures_total", labels) or 0.0

    response = place(api_client, (keyboard, 2))

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["warnings"] == []
    assert body["queued"] == ["send_confirmation", "track_analytics"]
    assert "send_confirmation" not in body["metrics"]
    order = Order.objects.get()
    assert order.status == Order.Status.PAID
    assert stock_levels() == {keyboard.pk: 3}

    # The worker meets the outage: the step is queued again for later, the failure counted.
    assert run_queued_steps() == {"send_confirmation": "requeued", "track_analytics": "ok"}
    entry = QueuedStep.objects.get(step="send_confirmation")
    assert entry.state == "queued"
    assert entry.last_error.startswith("email_unavailable:")
    failures_after = REGISTRY.get_sample_value("orchestrator_step_failures_total", labels)
    assert failures_after == failures_before + 1


# -- reading orders -----------------------------------------------------------------


@pytest.mark.django_db
def test_order_list_shows_only_the_callers_orders(
    api_client: APIClient, other_client: APIClient, keyboard: Product, cable: Product
) -> None:
    mine = place(api_client, (keyboard, 1)).json()["data"]["id"]
    place(other_client, (cable, 1))

    response = api_client.get(ORDERS)

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 1
    assert [order["id"] for order in body["results"]] == [mine]


@pytest.mark.django_db
def test_order_detail_is_404_for_another_users_order(
    api_client: APIClient, other_client: APIClient, keyboard: Product
) -> None:
    order_id = place(api_client, (keyboard, 1)).json()["data"]["id"]

    own = api_client.get(f"{ORDERS}{order_id}/")
    foreign = other_client.get(f"{ORDERS}{order_id}/")

    assert own.status_code == 200
    assert own.json()["total"] == "89.00"
    assert foreign.status_code == 404
    assert foreign.json()["error"]["code"] == "not_found"


# -- cancelling ---------------------------------------------------------------------


@pytest.mark.django_db
def test_cancel_order_refunds_and_restocks(
    api_client: APIClient, keyboard: Product, gateway: FakeGateway
) -> None:
    order_id = place(api_client, (keyboard, 2)).json()["data"]["id"]

    response = api_client.post(f"{ORDERS}{order_id}/cancel/")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["data"]["status"] == "cancelled"
    assert body["data"]["refund_reference"] in {refund.id for refund in gateway.refunds.values()}
    assert stock_levels() == {keyboard.pk: 5}
    again = api_client.post(f"{ORDERS}{order_id}/cancel/")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "order_not_cancellable"


@pytest.mark.django_db
def test_cancelling_another_users_order_is_404(
    api_client: APIClient, other_client: APIClient, keyboard: Product
) -> None:
    order_id = place(api_client, (keyboard, 2)).json()["data"]["id"]

    response = other_client.post(f"{ORDERS}{order_id}/cancel/")
    read = other_client.get(f"{ORDERS}{order_id}/")

    assert response.status_code == read.status_code == 404
    assert response.json()["error"]["step"] == "load_order"
    # The same situation, the same answer, whether the order is read or cancelled.
    cancel_error, read_error = response.json()["error"], read.json()["error"]
    assert (cancel_error["code"], cancel_error["message"]) == ("not_found", "Order not found.")
    assert (read_error["code"], read_error["message"]) == ("not_found", "Order not found.")
    assert Order.objects.get().status == Order.Status.PAID
    assert stock_levels() == {keyboard.pk: 3}


# -- authentication -----------------------------------------------------------------


def expired_token(user: Any) -> str:
    token = AccessToken.for_user(user)
    token["exp"] = int(time.time()) - 60
    return str(token)


def forged_token(user: Any) -> str:
    payload = AccessToken.for_user(user).payload
    return jwt.encode(payload, "a-signing-key-that-the-server-does-not-have", algorithm="HS256")


@pytest.mark.django_db
@pytest.mark.parametrize("make_header", [None, expired_token, forged_token])
@pytest.mark.parametrize(("method", "path"), [("post", ORDERS), ("get", ORDERS)])
def test_requests_without_a_valid_token_are_401(
    user: Any, keyboard: Product, make_header: Any, method: str, path: str
) -> None:
    client = APIClient()
    if make_header is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_header(user)}")
    before = stock_levels()

    response = getattr(client, method)(path, order_body((keyboard, 1)), format="json")

    assert response.status_code == 401
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] in {"not_authenticated", "token_not_valid"}
    assert "WWW-Authenticate" in response
    assert_nothing_written(before)


# -- products -----------------------------------------------------------------------


@pytest.mark.django_db
def test_products_are_public_and_hide_inactive_ones(make_product: Any) -> None:
    on_sale = make_product(name="On sale", price="1.50")
    withdrawn = make_product(name="Withdrawn", active=False)
    client = APIClient()

    listing = client.get("/api/products/")
    detail = client.get(f"/api/products/{on_sale.pk}/")
    hidden = client.get(f"/api/products/{withdrawn.pk}/")

    assert listing.status_code == 200
    assert [product["name"] for product in listing.json()["results"]] == ["On sale"]
    assert detail.json()["price"] == "1.50"
    assert Decimal(detail.json()["price"]) == on_sale.price
    assert hidden.status_code == 404
