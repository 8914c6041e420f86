"""The database restarts: JSON 503s while it is away, healed workers after, money right.

The test starts a PostgreSQL cluster of its own (``initdb`` and ``pg_ctl``, its
own data directory, socket directory and port; the machine's shared server is
never touched) and a gunicorn with three workers on it. Clients place orders
and read the catalogue while the cluster is restarted three ways: ``pg_ctl
stop -m fast`` (connections terminated), ``-m immediate`` (a crash: recovery
from the WAL at the next start) and a SIGKILLed postmaster. Then:

- every answer was JSON, every 5xx a ``503 database_unavailable`` envelope, and
  ``/ready/`` said not ready while the server was away;
- the workers healed, without a restart, within 15 s of the server coming back;
- after every unanswered request was retried with its ``Idempotency-Key`` and
  ``recover_effects`` ran, the gateway's books agree with the orders: no order
  paid with a refunded capture, no capture without an order or a refund, no two
  unrefunded captures for one client key.

Two deterministic cases pin the refund case of a restart in the middle of a
charge: the database comes back before the run compensates (the capture is
refunded, the retry pays with a new capture) and it does not (nothing is
refunded, the retry pays with the live capture).

Without PostgreSQL's server binaries the tests skip and say how to get them.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.servers import app_env, free_port, http_request, manage, running_gunicorn

pytestmark = pytest.mark.integration

USERNAME, PASSWORD = "restarttester", "restart-testing-password"
#: Seconds the workers have, once the server is back, to serve every request again.
HEAL_WITHIN = 15.0
#: Seconds a run holds its journal entries (short, so that recovery may run in the test).
LEASE = 3

SEED = f"""
from decimal import Decimal
from django.contrib.auth import get_user_model
from orders.models import Product
user = get_user_model().objects.create_user({USERNAME!r}, "restart@example.com", {PASSWORD!r})
product = Product.objects.create(sku="RESTART-1", name="Restart product",
                                 price=Decimal("4.20"), stock=1_000_000)
print("SEEDED", user.pk, product.pk)
"""

DUMP = """
import json
from orders.models import Order
print("DUMP", json.dumps(list(Order.objects.values("id", "status", "payment_reference"))))
"""


def _server_binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


BINARIES = _server_binaries()
requires_postgres = pytest.mark.skipif(
    BINARIES is None or (shutil.which("runuser") is None and os.geteuid() == 0),
    reason="needs PostgreSQL's server binaries (initdb, pg_ctl): `apt-get install postgresql` "
    "(Debian) or put its bin directory on PATH, then run "
    "`.venv/bin/python -m pytest tests/reliability/test_database_restart.py`",
)


class Cluster:
    """A PostgreSQL cluster of the test's own, on loopback, trust authentication."""

    def __init__(self, root: Path) -> None:
        assert BINARIES is not None
        self.root = root
        self.data = root / "data"
        self.port = free_port()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/restart"
        # initdb refuses to run as root: the cluster then belongs to the postgres user.
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(root, "postgres")
        root.chmod(0o755)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
        )

    def _run(self, binary: str, *args: str, check: bool = True) -> None:
        assert BINARIES is not None
        subprocess.run(
            [*self.as_user, str(BINARIES / binary), *args],
            check=check,
            capture_output=True,
            timeout=120,
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} "
            "-c max_connections=60 -c fsync=on"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.root / "log"),
            "-w",
            "-t",
            "60",
            "start",
        )

    def stop(self, mode: str) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def kill_postmaster(self) -> None:
        pid = int((self.data / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)
        # Its backends notice the postmaster's death and exit; a new one cannot start
        # while they hold the old shared memory.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self._backends_left():
            time.sleep(0.2)

    def _backends_left(self) -> bool:
        for stat in glob.glob("/proc/[0-9]*/cmdline"):
            try:
                if str(self.data).encode() in Path(stat).read_bytes():
                    return True
            except OSError:
                continue
        return False

    def create_database(self) -> None:
        import psycopg

        admin = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute("CREATE DATABASE restart")

    def destroy(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def own_cluster() -> Iterator[Cluster]:
    # Not under pytest's tmp_path: its parents are private to root, and the server may
    # run as the postgres user.
    cluster = Cluster(Path(tempfile.mkdtemp(prefix="restart-pg-")))
    try:
        cluster.start()
        cluster.create_database()
        yield cluster
    finally:
        cluster.destroy()


def books(path: Path) -> tuple[dict[str, str], set[str]]:
    """The gateway's captures (charge id -> its idempotency key) and the refunded ids."""
    with sqlite3.connect(path) as connection:
        charges = dict(connection.execute("SELECT id, idempotency_key FROM charges"))
        refunded = {row[0] for row in connection.execute("SELECT charge_id FROM refunds")}
    return charges, refunded


def effect_keys(user_id: int, client_key: str, attempts: int = 8) -> set[str]:
    """The gateway keys the charge step may use for one client key (as orchestration.journal
    derives them: orchestrator, step, the user's scope and the attempt)."""
    scope = f"user:{user_id}:{client_key}"
    return {
        hashlib.sha256(f"create_order\x1fcharge_payment\x1f{scope}\x1f{n}".encode()).hexdigest()
        for n in range(attempts)
    }


@dataclass
class Answers:
    """What the clients saw: (path, status, code) per answer, and the non-JSON ones."""

    seen: list[tuple[str, int, str]] = field(default_factory=list)
    not_json: list[tuple[str, int, bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, path: str, status: int, headers: Any, raw: bytes) -> dict[str, Any] | None:
        if not headers.get("Content-Type", "").startswith("application/json"):
            with self.lock:
                self.not_json.append((path, status, raw[:300]))
            return None
        body = json.loads(raw)
        code = (body.get("error") or {}).get("code", "") if isinstance(body, dict) else ""
        with self.lock:
            self.seen.append((path, status, code))
        return body


class Shop:
    """Clients of one running server: orders with idempotency keys, and reads."""

    def __init__(self, url: str, token: str, product: int, answers: Answers) -> None:
        self.url, self.token, self.product, self.answers = url, token, product, answers
        self.keys: dict[str, int | None] = {}  # client key -> final status, None: unanswered

    def order(self, key: str) -> int | None:
        body = {"items": [{"product": self.product, "quantity": 1}], "payment_token": "tok_visa"}
        try:
            status, headers, raw = http_request(
                f"{self.url}/api/orders/",
                method="POST",
                json_body=body,
                headers={"Authorization": f"Bearer {self.token}", "Idempotency-Key": key},
                timeout=60,
            )
        except OSError:
            return None
        self.answers.add("/api/orders/", status, headers, raw)
        return status

    def read(self, path: str) -> int | None:
        try:
            status, headers, raw = http_request(f"{self.url}{path}", timeout=30)
        except OSError:
            return None
        self.answers.add(path, status, headers, raw)
        return status

    def client(self, stop: threading.Event, number: int) -> None:
        turn = 0
        while not stop.is_set():
            turn += 1
            if number % 2 == 0 or turn % 3:
                key = uuid.uuid4().hex
                status = self.keys[key] = self.order(key)
            else:
                status = self.read("/api/products/" if turn % 2 else "/ready/")
            if status is None or status >= 500:
                time.sleep(0.1)  # as a client backs off; the retries come at the end


def heal_time(shop: Shop, back_at: float) -> float:
    """Seconds from ``back_at`` to the start of the first run of 10 rounds in a row
    (catalogue, readiness and an order each, spread over every worker) that all
    answer as a healthy server does: from then on, nothing failed."""
    streak, healed_at = 0, time.monotonic()
    while streak < 10:
        assert time.monotonic() - back_at < 60, "the workers did not heal within a minute"
        if streak == 0:
            healed_at = time.monotonic()
        key = uuid.uuid4().hex
        statuses = (shop.read("/api/products/"), shop.read("/ready/"), shop.order(key))
        shop.keys[key] = statuses[2]
        if statuses == (200, 200, 201):
            streak += 1
        else:
            streak = 0
            time.sleep(0.1)
    return healed_at - back_at


def prepared(cluster: Cluster, tmp_path: Path, **overrides: str) -> tuple[dict[str, str], int, int]:
    settings = {
        "PAYMENT_GATEWAY": "tests.reliability.holding_gateway.HoldingGateway",
        "FAKE_GATEWAY_BOOKS": str(tmp_path / "gateway-books.sqlite3"),
        "ORCHESTRATION_EFFECT_LEASE": str(LEASE),
        "DATABASE_CONNECT_TIMEOUT": "2",
        "LOG_LEVEL": "ERROR",
    }
    env = app_env(database_url=cluster.url, **{**settings, **overrides})
    manage(env, "migrate", "--no-input")
    user_id, product = (int(n) for n in manage(env, "shell", "-c", SEED).split("SEEDED")[1].split())
    return env, user_id, product


def token_for(url: str) -> str:
    status, _, raw = http_request(
        f"{url}/api/auth/token/",
        method="POST",
        json_body={"username": USERNAME, "password": PASSWORD},
    )
    assert status == 200, raw
    return json.loads(raw)["access"]


def settle_and_check_the_money(
    env: dict[str, str], shop: Shop, user_id: int, books_path: Path
) -> dict[str, int]:
    """Retry every unanswered or failed order, run recovery, and check the books."""
    unanswered = [key for key, status in shop.keys.items() if status is None or status >= 500]
    with ThreadPoolExecutor(4) as clients:
        for key, status in zip(unanswered, clients.map(shop.order, unanswered), strict=True):
            shop.keys[key] = status
    assert all(status in (201, 409) for status in shop.keys.values()), Counter(shop.keys.values())
    time.sleep(LEASE + 0.5)
    recovery = manage(env, "recover_effects")
    assert ", failed 0," in recovery, recovery
    charges, refunded = books(books_path)
    orders = json.loads(manage(env, "shell", "-c", DUMP).split("DUMP", 1)[1])

    paid = Counter(order["payment_reference"] for order in orders if order["status"] == "paid")
    for reference in paid:
        assert reference in charges, f"order paid with {reference}, which was never captured"
        assert reference not in refunded, f"order paid with the refunded capture {reference}"
        assert paid[reference] == 1, f"{reference} pays for {paid[reference]} orders"
    orphans = set(charges) - refunded - set(paid)
    assert not orphans, f"captures with neither an order nor a refund: {orphans}"
    by_gateway_key = {key: charge for charge, key in charges.items()}
    for client_key in shop.keys:
        live = [
            by_gateway_key[key]
            for key in effect_keys(user_id, client_key)
            if key in by_gateway_key and by_gateway_key[key] not in refunded
        ]
        assert len(live) <= 1, f"client key {client_key} holds {len(live)} unrefunded captures"
    return {
        "orders paid": len(paid),
        "captures": len(charges),
        "refunds": len(refunded),
    }


def outage(cluster: Cluster, how: str) -> Callable[[], None]:
    def take_down() -> None:
        if how == "postmaster killed":
            cluster.kill_postmaster()
        else:
            cluster.stop(how)

    return take_down


@requires_postgres
def test_restarts_under_load_answer_json_heal_and_keep_the_money_right(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with own_cluster() as cluster:
        env, user_id, product = prepared(cluster, tmp_path, HOLDING_GATEWAY_SECONDS="0.3")
        answers = Answers()
        figures: list[str] = []
        with running_gunicorn(env, workers=3, log_dir=tmp_path) as server:
            shop = Shop(server.url, token_for(server.url), product, answers)
            for how in ("fast", "immediate", "postmaster killed"):
                before = len(answers.seen)
                stop = threading.Event()
                with ThreadPoolExecutor(4) as clients:
                    for number in range(4):
                        clients.submit(shop.client, stop, number)
                    time.sleep(3)
                    outage(cluster, how)()
                    time.sleep(2)  # away: every answer meanwhile must be a JSON 503
                    ready_while_down = shop.read("/ready/")
                    cluster.start()
                    back_at = time.monotonic()
                    time.sleep(0.5)  # the load goes on a moment after the return
                    stop.set()
                healed = heal_time(shop, back_at)
                window = answers.seen[before:]
                unavailable = sum(1 for _, status, _ in window if status == 503)
                figures.append(
                    f"{how}: {len(window)} answers, {unavailable} JSON 503, "
                    f"healed in {healed:.1f} s"
                )
                assert ready_while_down == 503, "/ready/ said ready while the database was away"
                assert unavailable, f"{how}: no request saw the database away"
                assert healed < HEAL_WITHIN, f"{how}: the workers took {healed:.1f} s to heal"
            log = server.log()
            money = settle_and_check_the_money(
                env, shop, user_id, tmp_path / "gateway-books.sqlite3"
            )

    assert not answers.not_json, f"answers that were not JSON: {answers.not_json[:5]}"
    # /ready/ answers {"status": "unavailable"}; everything under /api/ the error envelope.
    failures = Counter((path, status, code) for path, status, code in answers.seen if status >= 500)
    allowed = {("/ready/", 503, "")} | {
        (path, 503, "database_unavailable") for path in ("/api/orders/", "/api/products/")
    }
    assert set(failures) <= allowed, failures
    assert "Traceback" not in log or "is_usable" not in log, log[-3000:]
    with capsys.disabled():
        print("\n" + "\n".join(figures), f"\n{len(answers.seen)} answers; {dict(money)}")


@requires_postgres
@pytest.mark.parametrize(
    ("away", "paid_with"),
    [
        # Back before the run compensates: the capture is refunded, the retry pays anew.
        (0.3, "a new capture"),
        # Still away when the run compensates: nothing may be undone, and the retry
        # gets the live capture back under its key.
        (6.0, "the first capture"),
    ],
)
def test_a_restart_in_the_middle_of_a_charge_never_pays_with_a_refunded_capture(
    tmp_path: Path, away: float, paid_with: str
) -> None:
    books_path = tmp_path / "gateway-books.sqlite3"
    with own_cluster() as cluster:
        # The gateway holds its answer 4 s after the capture; the lease is 5 s.
        env, user_id, product = prepared(
            cluster, tmp_path, HOLDING_GATEWAY_SECONDS="4", ORCHESTRATION_EFFECT_LEASE="5"
        )
        with running_gunicorn(env, workers=1, log_dir=tmp_path) as server:
            shop = Shop(server.url, token_for(server.url), product, Answers())
            key = uuid.uuid4().hex
            with ThreadPoolExecutor(1) as pool:
                first = pool.submit(shop.order, key)
                time.sleep(1.0)
                cluster.stop("fast")
                time.sleep(away)
                cluster.start()
                assert first.result() == 503
            [(_, _, code)] = shop.answers.seen
            assert code == "database_unavailable"
            charges_after_first, refunded_after_first = books(books_path)
            assert len(charges_after_first) == 1

            time.sleep(5.5)  # past the lease
            assert shop.order(key) == 201
            assert shop.order(key) == 201  # the replay of the same answer
            orders = json.loads(manage(env, "shell", "-c", DUMP).split("DUMP", 1)[1])
            manage(env, "recover_effects")
            charges, refunded = books(books_path)

    [order] = orders
    [first_capture] = charges_after_first
    assert order["status"] == "paid"
    assert order["payment_reference"] not in refunded
    if paid_with == "a new capture":
        assert refunded_after_first == {first_capture}
        assert order["payment_reference"] != first_capture
        assert len(charges) == 2
    else:
        assert refunded_after_first == set()
        assert order["payment_reference"] == first_capture
        assert len(charges) == 1
    assert refunded == refunded_after_first
    assert effect_keys(user_id, key) >= set(charges.values())
