"""Orders under load while the mail server is down and the payment gateway flickers.

A real gunicorn (two workers) serves the API; its SMTP server is a closed
loopback port and its gateway fails 40 % of the charge attempts
(``flaky_gateway.FlakyGateway``). Six client threads place a bounded number of
orders for more units than are in stock, each with an ``Idempotency-Key``,
retrying a 503 with the same key as a well-behaved client does. Afterwards the
database must tell the same story as the responses: every 201 is one paid
order with the lines that were asked for, nothing else was written, and the
stock adds up.
"""

from __future__ import annotations

import json
import random
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.servers import (
    app_env,
    drop_database,
    free_port,
    http_request,
    manage,
    prepare_database,
    running_gunicorn,
)

pytestmark = pytest.mark.integration

ORDERS = 180
THREADS = 6
CLIENT_ATTEMPTS = 3
PRODUCTS = 4
STOCK = 40
USERNAME, PASSWORD = "loadtester", "load-testing-password"

SEED = f"""
from decimal import Decimal
from django.contrib.auth import get_user_model
from orders.models import Product
get_user_model().objects.create_user({USERNAME!r}, "load@example.com", {PASSWORD!r})
ids = [
    Product.objects.create(
        sku=f"LOAD-{{n}}", name=f"Load product {{n}}", price=Decimal("10.00"), stock={STOCK}
    ).pk
    for n in range({PRODUCTS})
]
print("PRODUCTS", *ids)
"""

DUMP = """
import json
from orders.models import Order, OrderItem, Product
print("DUMP", json.dumps({
    "orders": list(Order.objects.values("id", "status", "total")),
    "items": list(OrderItem.objects.values("order_id", "product_id", "quantity")),
    "stock": {str(p.pk): p.stock for p in Product.objects.all()},
}, default=str))
"""


def place_order(
    url: str, token: str, body: dict[str, Any]
) -> tuple[str, list[tuple[int, dict[str, Any]]]]:
    """POST one order, retrying a 503 with the same key; the key and every answer."""
    key = uuid.uuid4().hex
    answers = []
    for _ in range(CLIENT_ATTEMPTS):
        status, _, raw = http_request(
            f"{url}/api/orders/",
            method="POST",
            json_body=body,
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key},
        )
        answers.append((status, json.loads(raw)))
        if status != 503:
            break
    return key, answers


def random_body(rng: random.Random, product_ids: list[int]) -> dict[str, Any]:
    chosen = rng.sample(product_ids, rng.randint(1, 2))
    return {
        "items": [{"product": pk, "quantity": rng.randint(1, 3)} for pk in chosen],
        "payment_token": "tok_declined" if rng.random() < 0.1 else "tok_visa",
    }


def test_every_answer_matches_the_database(tmp_path: Path) -> None:
    database_url = prepare_database(tmp_path, suffix="faults")
    env = app_env(
        database_url=database_url,
        EMAIL_URL=f"smtp://127.0.0.1:{free_port()}",  # nothing listens there
        EMAIL_TIMEOUT="2",
        PAYMENT_GATEWAY="tests.reliability.flaky_gateway.FlakyGateway",
        LOG_LEVEL="ERROR",
    )
    try:
        manage(env, "migrate", "--no-input")
        seeded = manage(env, "shell", "-c", SEED).split("PRODUCTS", 1)[1]
        product_ids = [int(pk) for pk in seeded.split()]
        rng = random.Random(6)
        bodies = [random_body(rng, product_ids) for _ in range(ORDERS)]
        with running_gunicorn(env, workers=2, log_dir=tmp_path) as server:
            status, _, raw = http_request(
                f"{server.url}/api/auth/token/",
                method="POST",
                json_body={"username": USERNAME, "password": PASSWORD},
            )
            assert status == 200, raw
            token = json.loads(raw)["access"]
            with ThreadPoolExecutor(THREADS) as pool:
                outcomes = list(pool.map(lambda b: place_order(server.url, token, b), bodies))
        dump = json.loads(manage(env, "shell", "-c", DUMP).split("DUMP", 1)[1])
    finally:
        drop_database(database_url)

    all_answers = [answer for _, answers in outcomes for answer in answers]
    statuses = Counter(status for status, _ in all_answers)
    assert set(statuses) <= {201, 402, 409, 503}, statuses
    for status, body in all_answers:
        assert body["success"] is (status == 201)
        assert body["request_id"]
    codes = Counter(body["error"]["code"] for status, body in all_answers if status != 201)
    # The faults really happened, and each kind of answer was seen.
    assert statuses[201] > 0
    assert codes["payment_gateway_unavailable"] > 0, codes
    assert codes["out_of_stock"] > 0, codes
    assert codes["payment_declined"] > 0, codes
    for status, body in all_answers:
        if status == 201:
            assert [w["code"] for w in body["warnings"]] == ["email_unavailable"], body

    placed = {}  # order id -> the body that placed it
    for (key, answers), body in zip(outcomes, bodies, strict=True):
        created = [answer for status, answer in answers if status == 201]
        assert len(created) <= 1, f"key {key} was answered 201 twice"
        if created:
            order_id = created[0]["data"]["id"]
            assert order_id not in placed, f"order {order_id} answered for two keys"
            placed[order_id] = body

    orders = {order["id"]: order for order in dump["orders"]}
    assert set(orders) == set(placed), "the database holds exactly the orders answered 201"
    assert all(order["status"] == "paid" for order in orders.values())
    items: dict[int, dict[int, int]] = {}
    for item in dump["items"]:
        items.setdefault(item["order_id"], {})[item["product_id"]] = item["quantity"]
    for order_id, body in placed.items():
        assert items[order_id] == {line["product"]: line["quantity"] for line in body["items"]}

    sold = Counter()
    for body in placed.values():
        for line in body["items"]:
            sold[line["product"]] += line["quantity"]
    for pk in product_ids:
        assert dump["stock"][str(pk)] == STOCK - sold[pk] >= 0
