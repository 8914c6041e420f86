"""Stalls: a stopped database and a slow mail server never hold a request for long.

The database stall is a loopback proxy in front of the shared PostgreSQL that
stops forwarding (``stalling_proxy``): to gunicorn it looks exactly like a
stopped server process, and nobody else's connections are touched. Every
endpoint must then answer, in JSON, well before gunicorn's worker timeout (30
s), instead of that timeout's HTML 500. The mail stall is an SMTP server that
holds each message 5 s: the order is answered while the message still waits,
because the request only queues it.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.reliability.smtp import Mailbox
from tests.reliability.stalling_proxy import StallingProxy
from tests.reliability.test_outbox_crash import spawn, stop, worker_command
from tests.servers import (
    POSTGRES_SCHEMES,
    app_env,
    drop_database,
    free_port,
    http_request,
    manage,
    prepare_database,
    running_gunicorn,
)

pytestmark = pytest.mark.integration

USERNAME, PASSWORD = "stalltester", "stall-testing-password"
#: Below gunicorn's worker timeout (30 s), whose answer is the HTML 500 this prevents.
ANSWER_WITHIN = 20.0

SEED = f"""
from decimal import Decimal
from django.contrib.auth import get_user_model
from orders.models import Product
get_user_model().objects.create_user({USERNAME!r}, "stall@example.com", {PASSWORD!r})
product = Product.objects.create(sku="STALL-1", name="Stall", price=Decimal("5.00"), stock=100)
print("PRODUCT", product.pk)
"""


def token_for(url: str) -> str:
    status, _, raw = http_request(
        f"{url}/api/auth/token/",
        method="POST",
        json_body={"username": USERNAME, "password": PASSWORD},
    )
    assert status == 200, raw
    return json.loads(raw)["access"]


def timed(url: str, **kwargs) -> tuple[float, int, str, bytes]:
    started = time.monotonic()
    status, headers, body = http_request(url, timeout=ANSWER_WITHIN + 15, **kwargs)
    return time.monotonic() - started, status, headers.get("Content-Type", ""), body


def test_a_stalled_database_gets_json_answers_in_a_few_seconds(tmp_path: Path) -> None:
    database_url = prepare_database(tmp_path, suffix="stall")
    parts = urlsplit(database_url)
    if parts.scheme not in POSTGRES_SCHEMES:
        drop_database(database_url)
        pytest.skip("the database deadlines are PostgreSQL's (run with DATABASE_URL=postgres://)")
    env = app_env(database_url=database_url, LOG_LEVEL="ERROR")
    try:
        manage(env, "migrate", "--no-input")
        product = int(manage(env, "shell", "-c", SEED).split("PRODUCT", 1)[1])
        with StallingProxy((parts.hostname or "127.0.0.1", parts.port or 5432)) as proxy:
            proxied = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))
            env = app_env(
                database_url=proxied,
                DATABASE_CONNECT_TIMEOUT="2",
                DATABASE_STATEMENT_TIMEOUT="2",
                LOG_LEVEL="ERROR",
            )
            with running_gunicorn(env, workers=2, log_dir=tmp_path) as server:
                token = token_for(server.url)
                auth = {"Authorization": f"Bearer {token}"}
                body = {"items": [{"product": product, "quantity": 1}], "payment_token": "tok_visa"}
                order = lambda: {"Idempotency-Key": uuid.uuid4().hex, **auth}  # noqa: E731
                assert http_request(f"{server.url}/ready/")[0] == 200
                calls = {
                    "health": {"url": f"{server.url}/health/"},
                    "ready": {"url": f"{server.url}/ready/"},
                    "metrics": {"url": f"{server.url}/metrics"},
                    "token": {
                        "url": f"{server.url}/api/auth/token/",
                        "method": "POST",
                        "json_body": {"username": USERNAME, "password": PASSWORD},
                    },
                    "products": {"url": f"{server.url}/api/products/", "headers": auth},
                    "orders": {"url": f"{server.url}/api/orders/", "headers": auth},
                    "place": {
                        "url": f"{server.url}/api/orders/",
                        "method": "POST",
                        "json_body": body,
                        "headers": order(),
                    },
                    "cancel": {
                        "url": f"{server.url}/api/orders/1/cancel/",
                        "method": "POST",
                        "headers": auth,
                    },
                }

                proxy.stall()
                answers = {name: timed(**call) for name, call in calls.items()}
                proxy.resume()

                recovered = http_request(
                    f"{server.url}/api/orders/", method="POST", json_body=body, headers=order()
                )
                log = server.log()
    finally:
        drop_database(database_url)

    for name, (seconds, _, content_type, raw) in answers.items():
        assert seconds < ANSWER_WITHIN, (name, seconds, log[-3000:])
        assert content_type.startswith(("application/json", "text/plain")), (name, raw[:300])
        if content_type.startswith("application/json"):
            json.loads(raw)
    assert answers["health"][1] == 200
    assert answers["metrics"][1] == 200  # no database behind it
    assert answers["ready"][1] == 503
    for name in ("token", "products", "orders", "place", "cancel"):
        status, raw = answers[name][1], answers[name][3]
        assert status == 503, (name, raw)
        assert json.loads(raw)["error"]["code"] == "database_unavailable", (name, raw)
    assert "WORKER TIMEOUT" not in log
    assert recovered[0] == 201, recovered[2]


def test_a_slow_mail_server_does_not_hold_the_order(tmp_path: Path) -> None:
    database_url = prepare_database(tmp_path, suffix="slowmail")
    mailbox = Mailbox(free_port(), stall=5.0)
    env = app_env(
        database_url=database_url,
        EMAIL_URL=f"smtp://127.0.0.1:{mailbox.port}",
        LOG_LEVEL="WARNING",
    )
    try:
        manage(env, "migrate", "--no-input")
        product = int(manage(env, "shell", "-c", SEED).split("PRODUCT", 1)[1])
        mailbox.start()
        worker = spawn(worker_command("database"), env, tmp_path / "worker.log")
        try:
            with running_gunicorn(env, workers=2, log_dir=tmp_path) as server:
                token = token_for(server.url)
                body = {"items": [{"product": product, "quantity": 1}], "payment_token": "tok_visa"}
                headers = {"Authorization": f"Bearer {token}"}
                first = http_request(
                    f"{server.url}/api/orders/", method="POST", json_body=body, headers=headers
                )
                assert first[0] == 201, first[2]
                # The worker is now holding the first message at the mail server...
                assert mailbox.stalled.wait(60), (tmp_path / "worker.log").read_text()
                # ...and the next order is answered meanwhile, before any mail was accepted.
                second = http_request(
                    f"{server.url}/api/orders/", method="POST", json_body=body, headers=headers
                )
                accepted_when_answered = len(mailbox.order_ids())
                assert second[0] == 201, second[2]
                ids = [json.loads(answer[2])["data"]["id"] for answer in (first, second)]
                deadline = time.monotonic() + 60
                while sorted(mailbox.order_ids()) != sorted(ids):
                    assert time.monotonic() < deadline, mailbox.subjects
                    time.sleep(0.2)
        finally:
            stop(worker)
    finally:
        mailbox.stop()
        drop_database(database_url)

    assert accepted_when_answered == 0
    assert json.loads(second[2])["queued"] == ["send_confirmation", "track_analytics"]
