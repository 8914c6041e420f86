"""Bad request bodies: 400 (413, 415 for the transport) in the error envelope; nothing written."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from orders.models import MAX_LINES, MAX_QUANTITY, Product
from orders.payments import FakeGateway
from orders.tests.support import assert_nothing_written, stock_levels

ORDERS = "/api/orders/"

Body = Callable[[Product, Product], Any]


def line(product: Product | int, quantity: Any = 1, **extra: Any) -> dict[str, Any]:
    return {"product": getattr(product, "pk", product), "quantity": quantity, **extra}


def with_items(*items: Any) -> dict[str, Any]:
    return {"items": list(items), "payment_token": "tok_visa"}


BAD_BODIES: list[tuple[str, Body, str]] = [
    ("empty object", lambda p, i: {}, "items"),
    ("items missing", lambda p, i: {"payment_token": "tok_visa"}, "items"),
    ("items empty", lambda p, i: with_items(), "items"),
    ("payment token missing", lambda p, i: {"items": [line(p)]}, "payment_token"),
    (
        "payment token blank",
        lambda p, i: {"items": [line(p)], "payment_token": ""},
        "payment_token",
    ),
    (
        "payment token a list",
        lambda p, i: {"items": [line(p)], "payment_token": ["t"]},
        "payment_token",
    ),
    (
        "payment token a number",
        lambda p, i: {"items": [line(p)], "payment_token": 123},
        "payment_token",
    ),
    (
        "payment token a boolean",
        lambda p, i: {"items": [line(p)], "payment_token": True},
        "payment_token",
    ),
    (
        "payment token too long",
        lambda p, i: {"items": [line(p)], "payment_token": "t" * 65},
        "payment_token",
    ),
    ("unknown product", lambda p, i: with_items(line(987_654)), "items"),
    ("inactive product", lambda p, i: with_items(line(i)), "items"),
    ("product id out of range", lambda p, i: with_items(line(2**70)), "items"),
    ("product id a string", lambda p, i: with_items(line("keyboard")), "items"),
    ("product id a numeric string", lambda p, i: with_items(line(str(p.pk))), "items"),
    ("product id a float", lambda p, i: with_items(line(float(p.pk))), "items"),
    ("product missing", lambda p, i: with_items({"quantity": 1}), "items"),
    ("zero quantity", lambda p, i: with_items(line(p, 0)), "items"),
    ("negative quantity", lambda p, i: with_items(line(p, -3)), "items"),
    ("quantity over the cap", lambda p, i: with_items(line(p, MAX_QUANTITY + 1)), "items"),
    ("absurd quantity", lambda p, i: with_items(line(p, 10**30)), "items"),
    ("fractional quantity", lambda p, i: with_items(line(p, 1.5)), "items"),
    ("quantity 2.0", lambda p, i: with_items(line(p, 2.0)), "items"),
    ("quantity a numeric string", lambda p, i: with_items(line(p, "2")), "items"),
    ("quantity a word", lambda p, i: with_items(line(p, "many")), "items"),
    ("quantity a boolean", lambda p, i: with_items(line(p, True)), "items"),
    ("quantity null", lambda p, i: with_items(line(p, None)), "items"),
    ("items a string", lambda p, i: {"items": "keyboard", "payment_token": "tok_visa"}, "items"),
    ("item a number", lambda p, i: with_items(7), "items"),
    ("same product twice", lambda p, i: with_items(line(p, 1), line(p, 2)), "items"),
    ("too many lines", lambda p, i: with_items(*[line(p)] * (MAX_LINES + 1)), "items"),
    ("client-sent total", lambda p, i: {**with_items(line(p)), "total": "0.01"}, "total"),
    ("client-sent unit price", lambda p, i: with_items(line(p, 1, unit_price="0.01")), "items"),
    ("unknown field", lambda p, i: {**with_items(line(p)), "coupon": "FREE"}, "coupon"),
    ("body a list", lambda p, i: [line(p)], "non_field_errors"),
    ("body a string", lambda p, i: "order please", "non_field_errors"),
]


@pytest.fixture
def inactive(make_product: Callable[..., Product]) -> Product:
    return make_product(name="Withdrawn", active=False)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("make_body", "field"), [case[1:] for case in BAD_BODIES], ids=[case[0] for case in BAD_BODIES]
)
def test_bad_body_is_400_with_field_errors(
    api_client: APIClient,
    keyboard: Product,
    inactive: Product,
    gateway: FakeGateway,
    make_body: Body,
    field: str,
) -> None:
    before = stock_levels()

    response = api_client.post(ORDERS, make_body(keyboard, inactive), format="json")

    assert response.status_code == 400, response.content
    body = response.json()
    assert body["success"] is False
    assert (body["error"]["step"], body["error"]["code"]) == ("validate_order", "validation_failed")
    assert field in body["error"]["details"]
    assert "validate_order" in body["metrics"]
    assert_nothing_written(before)
    assert gateway.charges == {}


@pytest.mark.django_db
def test_a_number_for_the_token_fails_validation_before_any_stock_is_reserved(
    api_client: APIClient, keyboard: Product, gateway: FakeGateway
) -> None:
    before = stock_levels()

    response = api_client.post(
        ORDERS, {"items": [line(keyboard)], "payment_token": 123}, format="json"
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["step"], error["code"]) == ("validate_order", "validation_failed")
    assert error["details"] == {"payment_token": ["Must be a JSON string, not the number 123."]}
    assert list(response.json()["metrics"]) == ["validate_order"]
    assert stock_levels() == before
    assert gateway.charges == {}


@pytest.mark.django_db
def test_json_types_are_not_coerced(api_client: APIClient, keyboard: Product) -> None:
    response = api_client.post(
        ORDERS, with_items({"product": str(keyboard.pk), "quantity": 2.0}), format="json"
    )

    assert response.json()["error"]["details"]["items"] == {
        "0": {
            "product": ["Must be a JSON integer, not a string."],
            "quantity": ["Must be a JSON integer, not the number 2.0."],
        }
    }


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"payment_token": "tok_visa"}, "This field is required."),
        ({"items": None, "payment_token": "tok_visa"}, "This field may not be null."),
        ({"items": [], "payment_token": "tok_visa"}, "This list may not be empty."),
        (
            {"items": "x", "payment_token": "tok_visa"},
            'Expected a list of items but got type "str".',
        ),
    ],
    ids=["missing", "null", "empty", "not a list"],
)
def test_every_error_about_items_as_a_whole_has_one_shape(
    api_client: APIClient, body: dict[str, Any], message: str
) -> None:
    response = api_client.post(ORDERS, body, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"items": [message]}


@pytest.mark.django_db
def test_errors_point_at_the_offending_line(
    api_client: APIClient, keyboard: Product, cable: Product, inactive: Product
) -> None:
    field_error = api_client.post(ORDERS, with_items(line(keyboard), line(cable, 0)), format="json")
    product_errors = api_client.post(
        ORDERS, with_items(line(keyboard), line(inactive), line(keyboard, 2)), format="json"
    )

    assert field_error.json()["error"]["details"]["items"] == {
        "1": {"quantity": ["Ensure this value is greater than or equal to 1."]}
    }
    items = product_errors.json()["error"]["details"]["items"]
    assert set(items) == {"1", "2"}
    assert "not on sale" in items["1"]["product"][0]
    assert "more than once" in items["2"]["product"][0]


@pytest.mark.django_db
def test_client_total_is_named_as_server_computed(api_client: APIClient, keyboard: Product) -> None:
    response = api_client.post(ORDERS, {**with_items(line(keyboard)), "total": "1"}, format="json")

    assert response.json()["error"]["details"]["total"] == [
        "This value is computed by the server and must not be sent."
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("payload", "content_type", "status", "code"),
    [
        ('{"items": [', "application/json", 400, "parse_error"),
        ("[" * 100_000 + "]" * 100_000, "application/json", 400, "parse_error"),
        (
            "items=1&payment_token=tok_visa",
            "application/x-www-form-urlencoded",
            415,
            "unsupported_media_type",
        ),
        ("an order please", "text/plain", 415, "unsupported_media_type"),
    ],
    ids=["malformed JSON", "nested too deeply", "form encoded", "plain text"],
)
def test_a_body_that_is_not_json_is_refused(
    api_client: APIClient,
    keyboard: Product,
    payload: str,
    content_type: str,
    status: int,
    code: str,
) -> None:
    before = stock_levels()

    response = api_client.generic("POST", ORDERS, payload, content_type=content_type)

    assert response.status_code == status
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == code
    assert_nothing_written(before)


@pytest.mark.django_db
def test_an_oversized_body_is_413(api_client: APIClient, keyboard: Product) -> None:
    padding = "x" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    payload = json.dumps({**with_items(line(keyboard)), "padding": padding})
    before = stock_levels()

    response = api_client.generic("POST", ORDERS, payload, content_type="application/json")

    assert response.status_code == 413
    body = response.json()
    assert (body["success"], body["error"]["code"]) == (False, "payload_too_large")
    assert_nothing_written(before)


@pytest.mark.django_db
def test_a_body_just_under_the_limit_is_parsed(api_client: APIClient, keyboard: Product) -> None:
    payload = json.dumps(with_items(line(keyboard)))
    payload += " " * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE - len(payload))

    response = api_client.generic("POST", ORDERS, payload, content_type="application/json")

    assert response.status_code == 201, response.content
