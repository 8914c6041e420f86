"""Money survives killed workers: gunicorn workers die mid-charge, recovery refunds.

A real gunicorn serves the API with a gateway that captures, then holds its
answer (``holding_gateway.HoldingGateway``, books in an SQLite file the test
reads). While a bounded load runs, workers that are holding a captured charge
are SIGKILLed, as the OOM killer would. Afterwards ``manage.py
recover_effects`` runs, and the gateway's books must agree with the database:
every capture belongs to exactly one committed order, or has been refunded.
Each lost request is then retried with its ``Idempotency-Key``: nothing new is
captured.

A second test makes the gateway slower than gunicorn's worker timeout: the
charge step's budget ends the wait first, the client gets a JSON error, and
the capture is refunded.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.servers import (
    POSTGRES_SCHEMES,
    app_env,
    drop_database,
    http_request,
    manage,
    prepare_database,
    running_gunicorn,
)

pytestmark = pytest.mark.integration

USERNAME, PASSWORD = "crashtester", "crash-testing-password"
ORDERS = 36
THREADS = 6
KILLS = 4
#: Seconds the gateway holds each captured charge before answering.
HOLD = 0.8
#: Seconds a run holds its journal entries: recovery may take them over after this.
LEASE = 3

SEED = f"""
from decimal import Decimal
from django.contrib.auth import get_user_model
from orders.models import Product
get_user_model().objects.create_user({USERNAME!r}, "crash@example.com", {PASSWORD!r})
product = Product.objects.create(sku="CRASH-1", name="Crash product", price=Decimal("7.50"),
                                 stock=10_000)
print("PRODUCT", product.pk)
"""

DUMP = """
import json
from orders.models import Order
print("DUMP", json.dumps(list(Order.objects.values("id", "status", "payment_reference"))))
"""


def books(path: Path) -> tuple[dict[str, int], set[str]]:
    """The gateway's captures (charge id -> cents) and the ids of refunded charges."""
    with sqlite3.connect(path) as connection:
        charges = dict(connection.execute("SELECT id, cents FROM charges"))
        refunded = {row[0] for row in connection.execute("SELECT charge_id FROM refunds")}
    return charges, refunded


def holding_pids(path: Path) -> set[int]:
    try:
        with sqlite3.connect(path) as connection:
            return {row[0] for row in connection.execute("SELECT pid FROM holding")}
    except sqlite3.OperationalError:  # the table does not exist before the first charge
        return set()


def is_worker_of(pid: int, master: int) -> bool:
    """Whether ``pid`` is a worker of the gunicorn this test started (never anything else)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return int(stat.rsplit(")", 1)[1].split()[1]) == master


def obtain_token(url: str) -> str:
    status, _, raw = http_request(
        f"{url}/api/auth/token/",
        method="POST",
        json_body={"username": USERNAME, "password": PASSWORD},
    )
    assert status == 200, raw
    return json.loads(raw)["access"]


def post_order(url: str, token: str, body: dict[str, Any], key: str) -> tuple[int, Any] | None:
    """The status and JSON body of one POST; None when the connection died with the worker."""
    try:
        status, headers, raw = http_request(
            f"{url}/api/orders/",
            method="POST",
            json_body=body,
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key},
            timeout=60,
        )
    except (ConnectionError, OSError):
        return None
    assert headers["Content-Type"].startswith("application/json"), raw[:200]
    return status, json.loads(raw)


@pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith(POSTGRES_SCHEMES),
    reason="SQLite has one writer, so the journal's intent is written in the run's own "
    "transaction and dies with a killed worker; the crash guarantee is PostgreSQL's.",
)
def test_killed_workers_leave_no_capture_without_an_order_or_a_refund(tmp_path: Path) -> None:
    database_url = prepare_database(tmp_path, suffix="crash")
    books_path = tmp_path / "gateway-books.sqlite3"
    env = app_env(
        database_url=database_url,
        PAYMENT_GATEWAY="tests.reliability.holding_gateway.HoldingGateway",
        FAKE_GATEWAY_BOOKS=str(books_path),
        HOLDING_GATEWAY_SECONDS=str(HOLD),
        ORCHESTRATION_EFFECT_LEASE=str(LEASE),
        LOG_LEVEL="ERROR",
    )
    try:
        manage(env, "migrate", "--no-input")
        product = int(manage(env, "shell", "-c", SEED).split("PRODUCT")[1].split()[0])
        body = {"items": [{"product": product, "quantity": 1}], "payment_token": "tok_visa"}
        keys = [uuid.uuid4().hex for _ in range(ORDERS)]
        with running_gunicorn(env, workers=3, log_dir=tmp_path) as server:
            token = obtain_token(server.url)
            done = threading.Event()
            killed: list[int] = []

            def kill_holders() -> None:
                while not done.is_set() and len(killed) < KILLS:
                    for pid in holding_pids(books_path) - set(killed):
                        if is_worker_of(pid, server.pid):
                            os.kill(pid, signal.SIGKILL)
                            killed.append(pid)
                            break
                    time.sleep(HOLD * 1.5)

            killer = threading.Thread(target=kill_holders)
            killer.start()
            try:
                with ThreadPoolExecutor(THREADS) as pool:
                    answers = list(pool.map(lambda k: post_order(server.url, token, body, k), keys))
            finally:
                done.set()
                killer.join()
            lost = [key for key, answer in zip(keys, answers, strict=True) if answer is None]
            charges_before_recovery, refunded_before_recovery = books(books_path)

            time.sleep(LEASE + 0.5)
            recovery = manage(env, "recover_effects")
            charges, refunded = books(books_path)
            orders = json.loads(manage(env, "shell", "-c", DUMP).split("DUMP", 1)[1])

            retried = [post_order(server.url, token, body, key) for key in lost]
            charges_after_retries, _ = books(books_path)
    finally:
        drop_database(database_url)

    # The faults happened: workers died holding captures nobody had refunded.
    assert killed, "no worker was killed mid-charge"
    assert lost, "no request lost its answer"
    orphans = set(charges_before_recovery) - refunded_before_recovery
    orphans -= {order["payment_reference"] for order in orders}
    assert orphans, "no capture was left without an order before recovery"
    # A worker killed between its claim and its capture left an entry with nothing
    # to refund: recovery closes it too, so it may compensate more than the orphans.
    compensated, failed = (int(part.split()[-1]) for part in recovery.split(",")[:2])
    assert compensated >= len(orphans), recovery
    assert failed == 0, recovery

    # Every capture belongs to exactly one committed order, or has been refunded.
    paid = Counter(order["payment_reference"] for order in orders if order["status"] == "paid")
    assert all(reference in charges for reference in paid), "an order without a capture"
    for charge_id in charges:
        if charge_id in refunded:
            assert paid[charge_id] == 0, f"{charge_id} was refunded but its order stands"
        else:
            assert paid[charge_id] == 1, f"{charge_id} captured for {paid[charge_id]} orders"
    assert len(orders) == len(paid)

    # Every answered 201 is a committed order; every other answer is JSON.
    created = {answer[1]["data"]["id"] for answer in answers if answer and answer[0] == 201}
    assert created <= {order["id"] for order in orders}

    # Retrying each lost request with its key captures nothing new: the order that
    # committed is replayed, the one that was rolled back is refused.
    assert charges_after_retries == charges
    for answer in retried:
        assert answer is not None
        status, answer_body = answer
        assert status in (201, 409), answer_body
        if status == 409:
            assert answer_body["error"]["code"] == "request_rolled_back"


def test_a_gateway_slower_than_the_worker_timeout_gets_a_json_error_and_a_refund(
    tmp_path: Path,
) -> None:
    database_url = prepare_database(tmp_path, suffix="slowgw")
    books_path = tmp_path / "gateway-books.sqlite3"
    env = app_env(
        database_url=database_url,
        PAYMENT_GATEWAY="tests.reliability.holding_gateway.HoldingGateway",
        FAKE_GATEWAY_BOOKS=str(books_path),
        HOLDING_GATEWAY_SECONDS="12",
        PAYMENT_TIMEOUT="2",
        ORCHESTRATION_EFFECT_LEASE=str(LEASE),
        LOG_LEVEL="ERROR",
    )
    try:
        manage(env, "migrate", "--no-input")
        product = int(manage(env, "shell", "-c", SEED).split("PRODUCT")[1].split()[0])
        body = {"items": [{"product": product, "quantity": 2}], "payment_token": "tok_visa"}
        with running_gunicorn(
            env, workers=1, extra_args=["--timeout", "6"], log_dir=tmp_path
        ) as server:
            token = obtain_token(server.url)
            answer = post_order(server.url, token, body, uuid.uuid4().hex)
            time.sleep(LEASE + 0.5)
            manage(env, "recover_effects")
            orders = json.loads(manage(env, "shell", "-c", DUMP).split("DUMP", 1)[1])
            log = server.log()
    finally:
        drop_database(database_url)

    assert answer is not None, "the worker was killed before it answered"
    status, answer_body = answer
    assert status == 503
    assert answer_body["error"]["step"] == "charge_payment"
    assert answer_body["error"]["code"] == "payment_gateway_timeout"
    assert "WORKER TIMEOUT" not in log
    charges, refunded = books(books_path)
    assert len(charges) == 1, "the gateway captured the charge before it stalled"
    assert set(charges) == refunded
    assert orders == []
