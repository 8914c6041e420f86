"""After-commit steps survive crashes: every committed order's email, exactly once.

A real gunicorn (two workers) places orders; a real SMTP server (aiosmtpd)
receives the confirmations; a real task worker sends them. Three requests kill
their web worker right after the commit (``kill_after_commit``): the client
never hears back, but the order is committed and so is its queued email (with
RQ, the crash also comes before the task reached Redis: the relay sends it).
Then the task worker is SIGKILLed while the SMTP server holds its first message
unanswered, and another worker starts beside the relay. In the end the mailbox
holds one confirmation per committed order, and none for a declined one.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import uuid
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from http.client import RemoteDisconnected
from pathlib import Path

import pytest

from tests.reliability.smtp import Mailbox
from tests.servers import (
    ROOT,
    app_env,
    drop_database,
    free_port,
    http_request,
    manage,
    prepare_database,
    running_gunicorn,
)

pytestmark = pytest.mark.integration

USERNAME, PASSWORD = "outboxtester", "outbox-testing-password"
NORMAL, KILLED = 4, 3
#: Seconds any wait of this test may last before it fails.
BOUND = 90

SEED = f"""
from decimal import Decimal
from django.contrib.auth import get_user_model
from orders.models import Product
get_user_model().objects.create_user({USERNAME!r}, "outbox@example.com", {PASSWORD!r})
product = Product.objects.create(sku="OUT-1", name="Outbox", price=Decimal("5.00"), stock=100)
print("PRODUCT", product.pk)
"""

PENDING = """
from orchestration.models import QueuedStep
print("PENDING", QueuedStep.objects.exclude(state="done").count())
"""

DUMP = """
import json
from orchestration.models import QueuedStep
from orders.models import Order
print("DUMP", json.dumps({
    "orders": sorted(Order.objects.values_list("id", flat=True)),
    "steps": list(QueuedStep.objects.values("step", "state", "attempts", "dispatches")),
}))
"""


def spawn(command: list[str], env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as output:
        return subprocess.Popen(
            command,
            cwd=ROOT,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Signal the process group this test started (and only it); wait for the leader."""
    if process.poll() is None:
        os.killpg(process.pid, sig)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextmanager
def private_redis(tmp_path: Path) -> Iterator[str]:
    """A throwaway Redis server on a free loopback port (nobody else's data)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is missing: `make system-deps` installs it")
    port = free_port()
    process = spawn(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        {},
        tmp_path / "redis.log",
    )
    try:
        deadline = time.monotonic() + BOUND
        while "Ready to accept connections" not in (tmp_path / "redis.log").read_text():
            assert process.poll() is None, (tmp_path / "redis.log").read_text()
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop(process)


def worker_command(backend: str) -> list[str]:
    if backend == "rq":
        return [sys.executable, "manage.py", "rqworker", "default"]
    return [
        sys.executable,
        "manage.py",
        "db_worker",
        "--interval",
        "0.2",
        "--no-reload",
        "--no-startup-delay",
    ]


def place(url: str, token: str, body: dict, *, kill: bool = False) -> int | None:
    """POST an order; its status, or None when the worker died before answering."""
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex}
    if kill:
        headers["X-Kill-After-Commit"] = "1"
    try:
        status, _, _ = http_request(
            f"{url}/api/orders/", method="POST", json_body=body, headers=headers
        )
    except (RemoteDisconnected, ConnectionError, urllib.error.URLError):
        return None
    return status


def wait_until_healthy(url: str) -> None:
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline:
        try:
            if http_request(f"{url}/health/", timeout=2)[0] == 200:
                return
        except (RemoteDisconnected, ConnectionError, urllib.error.URLError, TimeoutError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not come back")


@pytest.mark.parametrize("backend", ["database", "rq"])
def test_every_committed_order_gets_its_email_exactly_once(tmp_path: Path, backend: str) -> None:
    database_url = prepare_database(tmp_path, suffix=f"outbox_{backend}")
    mailbox = Mailbox(free_port(), stall=BOUND)
    with ExitStack() as stack:
        stack.callback(drop_database, database_url)
        stack.callback(mailbox.stop)
        overrides = {}
        if backend == "rq":
            overrides["TASKS_REDIS_URL"] = stack.enter_context(private_redis(tmp_path))
        env = app_env(
            database_url=database_url,
            DJANGO_SETTINGS_MODULE="tests.reliability.kill_after_commit",
            EMAIL_URL=f"smtp://127.0.0.1:{mailbox.port}",
            TASKS_BACKEND=backend,
            TASKS_RELAY_AFTER="1",
            TASKS_LEASE_GRACE="1",
            LOG_LEVEL="WARNING",
            **overrides,
        )
        manage(env, "migrate", "--no-input")
        product = int(manage(env, "shell", "-c", SEED).split("PRODUCT", 1)[1])
        body = {"items": [{"product": product, "quantity": 1}], "payment_token": "tok_visa"}
        declined = {**body, "payment_token": "tok_declined"}
        mailbox.start()

        with running_gunicorn(env, workers=2, log_dir=tmp_path) as server:
            status, _, raw = http_request(
                f"{server.url}/api/auth/token/",
                method="POST",
                json_body={"username": USERNAME, "password": PASSWORD},
            )
            assert status == 200, raw
            token = json.loads(raw)["access"]
            statuses = [place(server.url, token, body) for _ in range(NORMAL)]
            statuses.append(place(server.url, token, declined))
            for _ in range(KILLED):
                statuses.append(place(server.url, token, body, kill=True))
                wait_until_healthy(server.url)  # gunicorn replaces the dead worker
            assert statuses == [201] * NORMAL + [402] + [None] * KILLED, server.log()[-3000:]

        # The first worker dies while the mail server holds its first message unanswered.
        first = spawn(worker_command(backend), env, tmp_path / "worker-1.log")
        stack.callback(stop, first)
        assert mailbox.stalled.wait(BOUND), (tmp_path / "worker-1.log").read_text()[-3000:]
        stop(first, signal.SIGKILL)
        mailbox.stall = 0

        second = spawn(worker_command(backend), env, tmp_path / "worker-2.log")
        stack.callback(stop, second)
        relay = spawn(
            [sys.executable, "manage.py", "relay_queued_steps", "--every", "0.5"],
            env,
            tmp_path / "relay.log",
        )
        stack.callback(stop, relay)
        deadline = time.monotonic() + BOUND
        while int(manage(env, "shell", "-c", PENDING).split("PENDING", 1)[1]) > 0:
            assert time.monotonic() < deadline, (tmp_path / "worker-2.log").read_text()[-3000:]
            time.sleep(0.5)
        dump = json.loads(manage(env, "shell", "-c", DUMP).split("DUMP", 1)[1])

    orders = dump["orders"]
    assert len(orders) == NORMAL + KILLED  # the killed requests' orders were committed
    confirmations = mailbox.confirmations()
    assert confirmations == dict.fromkeys(orders, 1), confirmations
    assert len(set(mailbox.message_ids)) == len(mailbox.message_ids) == len(orders)
    emails = [step for step in dump["steps"] if step["step"] == "send_confirmation"]
    assert len(emails) == len(orders)
    assert all(step["state"] == "done" for step in dump["steps"])
    # One of them was delivered twice (the killed worker's), and claimed again.
    assert max(step["attempts"] for step in emails) == 2
    if backend == "rq":
        # The crashes came before the dispatch: the relay sent those tasks.
        assert sum(step["dispatches"] > 0 for step in emails) >= KILLED
