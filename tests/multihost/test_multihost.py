"""Past one machine: three hosts, one database, one Redis, and every guarantee held across them.

The test builds its own network of hosts out of network namespaces (``lab.py``):

- ``a`` and ``b``: gunicorn with the example project, each with its own
  Prometheus multiprocess directory;
- ``c``: the RQ task worker (``manage.py rqworker``), ``relay_queued_steps``,
  and a one-worker gunicorn that answers ``/metrics`` for the worker's metrics
  (same multiprocess directory), outside the balancer;
- ``lb``: nginx balancing ``a`` and ``b``;
- ``svc``: PostgreSQL (a cluster of the test's own, initdb'd here), Redis (no
  persistence), and the mail server (aiosmtpd, in this process);
- ``mon``: Prometheus scraping ``a``, ``b`` and ``c`` every second, with the
  generated rules loaded;
- ``client``: where the requests come from (threads of this process).

Then it proves, with real processes killed by SIGKILL, that the idempotency
keys, the throttles and the lockout, the journal's leases and recovery, the
after-commit steps and the metrics hold across hosts. ``FIGURES`` collects the
counts it saw; they are printed at the end (``-s``) and documented in
docs/multi-host.md.

Runs as root with ``ip`` (iproute2); elsewhere it skips, saying how to run it.
"""

from __future__ import annotations

import glob
import json
import math
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import yaml

from orchestration import dashboards
from tests.multihost.lab import Client, Lab, Response, can_make_namespaces, send, tail, wait_for
from tests.reliability.smtp import Mailbox
from tests.servers import BIN, ROOT, app_env

pytestmark = pytest.mark.integration

HOW_TO_RUN = (
    "the multi-host test builds network namespaces: run it as root with iproute2 installed "
    "(sudo .venv/bin/python -m pytest tests/multihost -p no:cacheprovider)"
)
_missing = can_make_namespaces()
if _missing is not None:
    pytest.skip(f"{_missing}; {HOW_TO_RUN}", allow_module_level=True)

USERNAME, PASSWORD, EMAIL = "buyer", "buyer-password-multihost", "buyer@example.com"
ADMIN = "operator"
METRICS_TOKEN = "multihost-metrics-token"
AXES_FAILURE_LIMIT = 4
TOKEN_THROTTLE = 10
#: Seconds the gateway holds each captured charge before answering (host a is killed then).
HOLD = 0.8
#: Seconds a run holds its journaled effects.
LEASE = 8
#: Seconds any wait of this test may last before it fails.
BOUND = 90
SUBNET = "10.231.7"
HOSTS = {
    "a": [f"{SUBNET}.11"],
    "b": [f"{SUBNET}.12"],
    "c": [f"{SUBNET}.13"],
    "svc": [f"{SUBNET}.20"],
    "lb": [f"{SUBNET}.30"],
    "mon": [f"{SUBNET}.40"],
    # One address per concern: throttles and lockouts are counted per client address.
    "client": [f"{SUBNET}.50", f"{SUBNET}.51", f"{SUBNET}.52", f"{SUBNET}.53"],
}
CLIENT, LOCKOUT_CLIENT, THROTTLE_CLIENT, OTHER_CLIENT = HOSTS["client"]
APP_PORT, PG_PORT, REDIS_PORT, SMTP_PORT, PROM_PORT = 8000, 5432, 6379, 2525, 9090
ORCHESTRATORS = ("cancel_order", "create_order")

#: What the test saw, for the report at the end (and docs/multi-host.md).
FIGURES: dict[str, Any] = {}

SEED = f"""
from decimal import Decimal
from django.contrib.auth import get_user_model
from orders.models import Product
User = get_user_model()
User.objects.create_user({USERNAME!r}, {EMAIL!r}, {PASSWORD!r})
User.objects.create_superuser({ADMIN!r}, "operator@example.com", "operator-password")
for n in range(3):
    User.objects.create_user(f"locked{{n}}", f"locked{{n}}@example.com", "right-password")
product = Product.objects.create(sku="MH-1", name="Multi-host", price=Decimal("7.50"),
                                 stock=100_000)
print("PRODUCT", product.pk)
"""

EXPLORER = """
import json, os
from django.contrib.auth import get_user_model
from django.test import Client
client = Client()
client.force_login(get_user_model().objects.get(username=os.environ["EXPLORER_USER"]))
host = os.environ["EXPLORER_HOST"]
listing = client.get("/admin/orchestration/runrecord/", HTTP_HOST=host, secure=True)
ids = json.loads(os.environ["EXPLORER_IDS"])
pages = {}
for request_id in ids:
    page = client.get("/admin/orchestration/runrecord/", {"q": request_id}, HTTP_HOST=host,
                      secure=True)
    pages[request_id] = page.content.decode().count(request_id)
print("EXPLORER", json.dumps({"status": listing.status_code, "found": pages,
      "listed": {i: i in listing.content.decode() for i in ids}}))
"""


def figure(name: str, value: Any) -> None:
    FIGURES[name] = value
    print(f"[multihost] {name}: {value}", file=sys.stderr)


@dataclass
class Cluster:
    lab: Lab
    client: Client
    logs: Path
    books: Path
    env: dict[str, str]
    dsn: str
    product: int
    token: str = ""
    mailbox: Mailbox | None = None
    host_c: list[Any] = field(default_factory=list)
    c_starts: int = 0

    # -- addresses
    def url(self, host: str) -> str:
        if host == "lb":
            return f"http://{self.lab.address('lb')}"
        return f"http://{self.lab.address(host)}:{APP_PORT}"

    @property
    def prometheus(self) -> str:
        return f"http://{self.lab.address('mon')}:{PROM_PORT}"

    # -- environment of one host
    def host_env(self, host: str, **overrides: str) -> dict[str, str]:
        multiproc = self.logs / f"prometheus-{host}"
        multiproc.mkdir(exist_ok=True)
        return {**self.env, "PROMETHEUS_MULTIPROC_DIR": str(multiproc), **overrides}

    def manage(self, host: str, *args: str, **overrides: str) -> str:
        env = self.host_env(host, **overrides)
        return self.lab.run(host, [sys.executable, "manage.py", *args], env=env)

    # -- HTTP
    def request(self, host: str, path: str, **kwargs: Any) -> Response:
        kwargs.setdefault("source", CLIENT)
        return self.client.request(f"{self.url(host)}{path}", **kwargs)

    def post(
        self, host: str, *, key: str | None = None, token: str = "tok_visa", request_id: str = ""
    ) -> Response | None:
        """POST an order from this (client) thread; None when the host died with it."""
        headers = {"Authorization": f"Bearer {self.token}"}
        if key:
            headers["Idempotency-Key"] = key
        if request_id:
            headers["X-Request-ID"] = request_id
        body = {"items": [{"product": self.product, "quantity": 1}], "payment_token": token}
        try:
            return send(
                f"{self.url(host)}/api/orders/",
                method="POST",
                body=body,
                headers=headers,
                source=CLIENT,
            )
        except OSError:
            return None

    def order(self, host: str, **kwargs: Any) -> Future[Response | None]:
        """``post`` in a thread of the client host."""
        return self.client.submit(self.post, host, **kwargs)

    # -- SQL, from the client host
    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        def run() -> list[tuple[Any, ...]]:
            import psycopg

            with psycopg.connect(self.dsn, autocommit=True, connect_timeout=5) as connection:
                return connection.execute(query, params).fetchall()

        return self.client.call(run)

    def pending_steps(self) -> int:
        return self.sql(
            "SELECT count(*) FROM orchestration_queuedstep WHERE state IN ('queued', 'running')"
        )[0][0]

    def wait_for_deliveries(self) -> None:
        wait_for(
            "every after-commit step delivered",
            lambda: self.pending_steps() == 0,
            timeout=BOUND,
        )

    # -- Prometheus
    def query(self, expr: str) -> list[dict[str, Any]]:
        answer = self.client.request(
            f"{self.prometheus}/api/v1/query?{urlencode({'query': expr})}"
        ).json()
        assert answer["status"] == "success", (expr, answer)
        return answer["data"]["result"]

    def by(self, expr: str, *labels: str) -> dict[tuple[str, ...], float]:
        return {
            tuple(series["metric"].get(label, "") for label in labels): float(series["value"][1])
            for series in self.query(expr)
        }

    # -- the gateway's books
    def books_now(self) -> tuple[dict[str, str], set[str]]:
        """Captures (charge id -> idempotency key) and refunded charge ids."""
        try:
            with sqlite3.connect(self.books) as connection:
                charges = dict(connection.execute("SELECT id, idempotency_key FROM charges"))
                refunded = {row[0] for row in connection.execute("SELECT charge_id FROM refunds")}
        except sqlite3.OperationalError:  # no charge yet: the gateway makes its tables then
            return {}, set()
        return charges, refunded

    def holding(self) -> set[int]:
        try:
            with sqlite3.connect(self.books) as connection:
                return {row[0] for row in connection.execute("SELECT pid FROM holding")}
        except sqlite3.OperationalError:  # no charge yet
            return set()

    # -- host c
    def start_host_c(self) -> None:
        """The worker host: /metrics first (its gunicorn empties the metrics directory when
        it starts), then the RQ worker and the relay."""
        self.c_starts += 1
        env = self.host_env("c")
        log = self.logs / f"c-{self.c_starts}"
        address = self.lab.address("c")
        self.lab.spawn("c", gunicorn(address, workers=1), env=env, log=Path(f"{log}-gunicorn.log"))
        self._wait_healthy("c")
        self.lab.spawn(
            "c",
            [sys.executable, "manage.py", "rqworker", "default"],
            env=env,
            log=Path(f"{log}-rqworker.log"),
        )
        self.lab.spawn(
            "c",
            [sys.executable, "manage.py", "relay_queued_steps", "--every", "0.5", "--no-purge"],
            env=env,
            log=Path(f"{log}-relay.log"),
        )

    def _wait_healthy(self, host: str) -> None:
        url = f"{self.url(host)}/health/"
        wait_for(
            f"{url} answering",
            lambda: self.client.request(url, timeout=2).status == 200,
            timeout=BOUND,
        )


def gunicorn(address: str, *, workers: int) -> list[str]:
    return [
        str(BIN / "gunicorn"),
        "--config",
        "config/gunicorn.conf.py",
        "--bind",
        f"{address}:{APP_PORT}",
        "--workers",
        str(workers),
    ]


def postgres_bin() -> Path:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(p.split("/")[4])
    )
    if not found:
        pytest.fail("PostgreSQL's server is not installed (Debian package postgresql)")
    return Path(found[-1]).parent


NGINX_CONF = """
user root;
worker_processes 1;
pid {run}/nginx.pid;
error_log {run}/error.log warn;
daemon off;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {run}/body;
    proxy_temp_path {run}/proxy;
    fastcgi_temp_path {run}/fastcgi;
    uwsgi_temp_path {run}/uwsgi;
    scgi_temp_path {run}/scgi;
    upstream app {{
        server {a}:{port};
        server {b}:{port};
    }}
    server {{
        listen {lb}:80;
        location / {{
            proxy_pass http://app;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_read_timeout 60s;
        }}
    }}
}}
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    for tool in ("nginx", "redis-server", "prometheus"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: `make system-deps` installs it")
    started = time.monotonic()
    logs = tmp_path_factory.mktemp("multihost")
    lab = Lab(f"mh{os.getpid()}", SUBNET, HOSTS)
    client: Client | None = None
    mailbox: Mailbox | None = None
    # PostgreSQL refuses root and needs a directory its own user can reach.
    pgdata = Path(tempfile.mkdtemp(prefix="multihost-pg-"))
    try:
        lab.open()
        client = Client(lab.ns("client"))
        svc = lab.address("svc")

        # -- shared services: PostgreSQL, Redis, the mail server
        pg = postgres_bin()
        shutil.chown(pgdata, "postgres", "postgres")
        lab.run(
            "svc",
            ["runuser", "-u", "postgres", "--", str(pg / "initdb"), "-D", str(pgdata / "data"),
             "-A", "trust", "-U", "postgres", "--no-sync"],
            env=os.environ,
        )  # fmt: skip
        with (pgdata / "data" / "pg_hba.conf").open("a") as hba:
            hba.write(f"host all all {SUBNET}.0/24 trust\n")
        lab.spawn(
            "svc",
            ["runuser", "-u", "postgres", "--", str(pg / "postgres"), "-D", str(pgdata / "data"),
             "-c", f"listen_addresses={svc}", "-p", str(PG_PORT),
             "-c", f"unix_socket_directories={pgdata}", "-c", "max_connections=200",
             "-c", "fsync=off", "-c", "full_page_writes=off"],
            env=os.environ,
            log=logs / "postgres.log",
        )  # fmt: skip
        lab.spawn(
            "svc",
            ["redis-server", "--bind", svc, "--port", str(REDIS_PORT), "--save", "",
             "--appendonly", "no", "--protected-mode", "no"],
            env=os.environ,
            log=logs / "redis.log",
        )  # fmt: skip
        wait_for(
            "PostgreSQL accepting connections",
            lambda: (
                subprocess.run(
                    [
                        "ip",
                        "netns",
                        "exec",
                        lab.ns("svc"),
                        str(pg / "pg_isready"),
                        "-h",
                        svc,
                        "-p",
                        str(PG_PORT),
                        "-q",
                    ],
                    check=False,
                ).returncode
                == 0
            ),
            timeout=BOUND,
        )
        lab.run("svc", [str(pg / "createdb"), "-h", svc, "-p", str(PG_PORT), "-U", "postgres",
                        "orchestration"], env=os.environ)  # fmt: skip
        wait_for(
            "Redis ready",
            lambda: "Ready to accept connections" in (logs / "redis.log").read_text(),
            timeout=BOUND,
        )
        mailbox = lab_mailbox(lab)

        dsn = f"postgresql://postgres@{svc}:{PG_PORT}/orchestration"
        books = logs / "gateway-books.sqlite3"
        env = app_env(
            database_url=f"postgres://postgres@{svc}:{PG_PORT}/orchestration",
            DJANGO_ALLOWED_HOSTS=",".join(
                [lab.address(host) for host in ("a", "b", "c", "lb")] + ["localhost"]
            ),
            CACHE_URL=f"redis://{svc}:{REDIS_PORT}/1",
            TASKS_BACKEND="rq",
            TASKS_REDIS_URL=f"redis://{svc}:{REDIS_PORT}/0",
            TASKS_RELAY_AFTER="1",
            TASKS_LEASE_GRACE="2",
            EMAIL_URL=f"smtp://{svc}:{SMTP_PORT}",
            PAYMENT_GATEWAY="tests.reliability.holding_gateway.HoldingGateway",
            FAKE_GATEWAY_BOOKS=str(books),
            HOLDING_GATEWAY_SECONDS=str(HOLD),
            ORCHESTRATION_EFFECT_LEASE=str(LEASE),
            ORCHESTRATION_RUN_SAMPLE_RATE="1",
            METRICS_TOKEN=METRICS_TOKEN,
            TRUSTED_PROXIES=f"{lab.address('lb')}/32",
            AXES_FAILURE_LIMIT=str(AXES_FAILURE_LIMIT),
            TOKEN_THROTTLE_RATE=f"{TOKEN_THROTTLE}/min",
            WEB_CONCURRENCY="2",
            LOG_LEVEL="WARNING",
            DJANGO_ENV_FILE="",
        )
        cluster = Cluster(lab, client, logs, books, env, dsn, product=0, mailbox=mailbox)
        cluster.manage("a", "migrate", "--no-input")
        cluster.product = int(cluster.manage("a", "shell", "-c", SEED).split("PRODUCT")[1])

        # -- app hosts, the worker host, the balancer, Prometheus
        for host in ("a", "b"):
            lab.spawn(
                host,
                gunicorn(lab.address(host), workers=2),
                env=cluster.host_env(host),
                log=logs / f"{host}-gunicorn.log",
            )
        for host in ("a", "b"):
            cluster._wait_healthy(host)
        cluster.start_host_c()

        run = logs / "nginx"
        run.mkdir()
        (run / "nginx.conf").write_text(
            NGINX_CONF.format(
                run=run, a=lab.address("a"), b=lab.address("b"), lb=lab.address("lb"), port=APP_PORT
            )
        )
        lab.spawn(
            "lb",
            ["nginx", "-p", str(run), "-c", str(run / "nginx.conf")],
            env=os.environ,
            log=logs / "nginx.log",
        )
        cluster._wait_healthy("lb")

        prometheus_dir = logs / "prometheus"
        prometheus_dir.mkdir()
        shutil.copy(
            ROOT / "dashboards" / "prometheus" / dashboards.RULES_FILE,
            prometheus_dir / dashboards.RULES_FILE,
        )
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [dashboards.RULES_FILE],
            "scrape_configs": [
                {
                    "job_name": dashboards.SCRAPE_JOB,
                    "metrics_path": "/metrics",
                    "authorization": {"type": "Bearer", "credentials": METRICS_TOKEN},
                    "static_configs": [
                        {"targets": [f"{lab.address(h)}:{APP_PORT}" for h in ("a", "b", "c")]}
                    ],
                }
            ],
        }
        (prometheus_dir / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        lab.spawn(
            "mon",
            ["prometheus", f"--config.file={prometheus_dir / 'prometheus.yml'}",
             f"--storage.tsdb.path={prometheus_dir / 'data'}",
             f"--web.listen-address={lab.address('mon')}:{PROM_PORT}", "--log.level=warn"],
            env=os.environ,
            log=logs / "prometheus.log",
        )  # fmt: skip
        wait_for(
            "Prometheus ready",
            lambda: client.request(f"{cluster.prometheus}/-/ready", timeout=2).status == 200,
            timeout=BOUND,
        )
        wait_for(
            "Prometheus scraping a, b and c",
            lambda: (
                cluster.by(f'up{{job="{dashboards.SCRAPE_JOB}"}} == 1', "instance").keys()
                == {(f"{lab.address(h)}:{APP_PORT}",) for h in ("a", "b", "c")}
            ),
            timeout=BOUND,
        )

        answer = cluster.request(
            "b",
            "/api/auth/token/",
            method="POST",
            body={"username": USERNAME, "password": PASSWORD},
        )
        assert answer.status == 200, answer
        cluster.token = answer.json()["access"]
        figure("start-up seconds", round(time.monotonic() - started, 1))
        yield cluster
    finally:
        if mailbox is not None:
            mailbox.stop()
        if client is not None:
            client.close()
        lab.close()
        shutil.rmtree(pgdata, ignore_errors=True)
        figure("total seconds", round(time.monotonic() - started, 1))
        print("[multihost] logs:", logs, file=sys.stderr)


def lab_mailbox(lab: Lab) -> Mailbox:
    """The mail server on the services host (aiosmtpd's thread starts inside its namespace)."""
    from tests.multihost.lab import run_in_namespace

    def start() -> Mailbox:
        box = Mailbox(SMTP_PORT)
        box.controller.hostname = lab.address("svc")
        box.start()
        return box

    return run_in_namespace(lab.ns("svc"), start)


# -- exact metrics ----------------------------------------------------------------------


def step_counts(cluster: Cluster) -> dict[tuple[str, ...], float]:
    job = dashboards.SCRAPE_JOB
    return cluster.by(
        f'sum by (orchestrator, step) (orchestrator_step_duration_seconds_count{{job="{job}"}})',
        "orchestrator",
        "step",
    )


def request_counts(cluster: Cluster) -> dict[tuple[str, ...], float]:
    """django-prometheus's responses of the orders API, by instance, view, method and status."""
    job = dashboards.SCRAPE_JOB
    return cluster.by(
        "sum by (instance, view, method, status) "
        f'(django_http_responses_total_by_status_view_method_total{{job="{job}", '
        'view=~"orders:.*"})',
        "instance",
        "view",
        "method",
        "status",
    )


def delta(
    after: dict[tuple[str, ...], float], before: dict[tuple[str, ...], float]
) -> dict[tuple[str, ...], float]:
    changed = {key: value - before.get(key, 0.0) for key, value in after.items()}
    return {key: value for key, value in changed.items() if value}


def dashboard_queries(window: str) -> list[tuple[str, str]]:
    """(dashboard, PromQL) for every panel target and query variable of the committed
    overview dashboard and those of the orders' two orchestrators (the traffic here runs
    those two), with Grafana's variables replaced as when both are selected."""
    variables = {"$job": dashboards.SCRAPE_JOB, "$orchestrator": "(cancel_order|create_order)"}
    queries = []
    directory = ROOT / "dashboards" / "grafana" / "dashboards"
    names = ["orchestration-overview", *(f"orchestrator-{name}" for name in ORCHESTRATORS)]
    for path in (directory / f"{name}.json" for name in names):
        board = json.loads(path.read_text())
        exprs = [t["expr"] for panel in board["panels"] for t in panel.get("targets", [])]
        for variable in board["templating"]["list"]:
            if variable["type"] == "query":
                metric, label = re.fullmatch(
                    r"label_values\((.+), (\w+)\)", variable["query"]
                ).groups()
                exprs.append(f"count by ({label}) ({metric})")
        for expr in exprs:
            expr = expr.replace("$__rate_interval", window).replace("$__interval", window)
            for name, value in variables.items():
                expr = expr.replace(name, value)
            assert "$" not in expr, expr
            queries.append((path.name, expr))
    return queries


def test_metrics_summed_over_hosts_equal_what_the_clients_sent(cluster: Cluster) -> None:
    """N requests through the balancer: Prometheus's sums over a, b and c equal N, for the
    requests and for every step (after-commit ones counted once, on the worker host)."""
    job = dashboards.SCRAPE_JOB
    cluster.wait_for_deliveries()
    time.sleep(2.5)  # two scrapes after anything before this test
    before_steps, before_requests = step_counts(cluster), request_counts(cluster)

    orders: list[Response] = []
    cancels: list[Response] = []

    def cancel(order_id: int) -> None:
        cancels.append(
            cluster.request(
                "lb",
                f"/api/orders/{order_id}/cancel/",
                method="POST",
                headers={"Authorization": f"Bearer {cluster.token}"},
            )
        )

    def place(tokens: list[str]) -> list[int]:
        answers = [future.result() for future in [cluster.order("lb", token=t) for t in tokens]]
        assert all(answers), answers
        orders.extend(answer for answer in answers if answer is not None)
        return [a.json()["data"]["id"] for a in answers if a is not None and a.status == 201]

    # Two phases: Prometheus scrapes the first's new series before the second, so that
    # the second's increments show in rate() (a series' first sample has no increase).
    (first, _) = place(["tok_visa", "tok_visa", "tok_declined"])[:2]
    cancel(first)
    cancel(first)  # again: a critical failure of cancel_order
    wait_for(
        "the first phase scraped",
        lambda: sum(delta(request_counts(cluster), before_requests).values()) == 5,
        timeout=30,
    )
    created = place(["tok_visa"] * 10 + ["tok_declined"] * 3 + ["tok_unavailable"] * 2)
    for order_id in created[:2]:
        cancel(order_id)
    statuses = Counter(answer.status for answer in orders)
    assert statuses == {201: 12, 402: 4, 503: 2}, [a for a in orders if a.status == 503]
    assert Counter(answer.status for answer in cancels) == {200: 3, 409: 1}, cancels
    placed = [answer.json() for answer in orders]
    cluster.wait_for_deliveries()

    # What the clients saw: each run's steps (the envelope's metrics), and the queued
    # steps the worker host ran (each delivered once here: nothing was killed).
    expected: Counter[tuple[str, ...]] = Counter()
    for body in placed:
        expected.update(("create_order", step) for step in body["metrics"])
    for answer in cancels:
        expected.update(("cancel_order", step) for step in answer.json()["metrics"])
    queued = {
        (orchestrator, step): count
        for orchestrator, step, count in cluster.sql(
            "SELECT orchestrator, step, count(*) FROM orchestration_queuedstep "
            "WHERE state = 'done' AND request_id = ANY(%s) GROUP BY orchestrator, step",
            [body["request_id"] for body in placed]
            + [answer.json()["request_id"] for answer in cancels],
        )
    }
    assert queued[("create_order", "send_confirmation")] == 12, queued
    expected.update(queued)
    requests = len(orders) + len(cancels)

    def settled() -> bool:
        steps = delta(step_counts(cluster), before_steps)
        seen = sum(delta(request_counts(cluster), before_requests).values())
        return steps == dict(expected) and seen == requests

    try:
        wait_for("step counts in Prometheus", settled, timeout=30)
    finally:
        seen_steps = delta(step_counts(cluster), before_steps)
        seen_requests = delta(request_counts(cluster), before_requests)
    assert seen_steps == dict(expected)
    per_instance: Counter[str] = Counter()
    per_status: Counter[tuple[str, str, str]] = Counter()
    for (instance, view, method, status), count in seen_requests.items():
        per_instance[instance] += int(count)
        per_status[(view, method, status)] += int(count)
    assert sum(per_instance.values()) == requests
    assert per_status == {
        ("orders:order-list", "POST", "201"): 12,
        ("orders:order-list", "POST", "402"): 4,
        ("orders:order-list", "POST", "503"): 2,
        ("orders:order-cancel", "POST", "200"): 3,
        ("orders:order-cancel", "POST", "409"): 1,
    }
    a, b = (f"{cluster.lab.address(host)}:{APP_PORT}" for host in ("a", "b"))
    assert set(per_instance) == {a, b}, per_instance  # the balancer used both, and only them
    figure(
        "metrics: client requests / Prometheus sum",
        f"{requests} / {sum(per_instance.values())} (a {per_instance[a]}, b {per_instance[b]})",
    )
    figure(
        "metrics: step runs seen by clients and workers / Prometheus sum",
        f"{sum(expected.values())} / {sum(seen_steps.values())} over {len(expected)} steps",
    )

    # Each series of the engine comes from the hosts that ran it: the pipelines from a and
    # b, the after-commit steps from c alone (not counted again by the web hosts).
    c = f"{cluster.lab.address('c')}:{APP_PORT}"
    runs = cluster.by(
        f'sum by (instance) (orchestrator_duration_seconds_count{{job="{job}"}}) > 0', "instance"
    )
    assert {instance for (instance,) in runs} == {a, b}, runs
    emails = cluster.by(
        "sum by (instance) (orchestrator_step_duration_seconds_count"
        f'{{job="{job}", step="send_confirmation"}}) > 0',
        "instance",
    )
    assert {instance for (instance,) in emails} == {c}, emails

    # Every dashboard query answers, without NaN, for both orchestrators, over the two
    # web hosts' series.
    queries = dashboard_queries("2m")
    assert len(queries) > 40
    for source, expr in queries:
        result = cluster.query(expr)
        assert result, f"{source}: no data for {expr}"
        for series in result:
            assert not math.isnan(float(series["value"][1])), f"{source}: NaN in {expr}"
        found = {s["metric"]["orchestrator"] for s in result if "orchestrator" in s["metric"]}
        if found:
            assert found >= set(ORCHESTRATORS), f"{source}: only {found} in {expr}"
    figure("dashboard queries answered", len(queries))

    # The generated rules: every one evaluates, without error, on the three hosts' series.
    rules = yaml.safe_load(
        (ROOT / "dashboards" / "prometheus" / dashboards.RULES_FILE).read_text()
    )["groups"]
    count = sum(len(group["rules"]) for group in rules)

    def evaluated() -> bool:
        answer = cluster.client.request(f"{cluster.prometheus}/api/v1/rules").json()
        healthy = [
            rule
            for group in answer["data"]["groups"]
            for rule in group["rules"]
            if rule["health"] == "ok" and not rule.get("lastError")
        ]
        return len(healthy) == count

    wait_for("every rule evaluated", evaluated, timeout=30)
    record = "orchestrator:orchestrator_runs:rate5m"
    wait_for(
        f"{record} for both orchestrators",
        lambda: {key[0] for key in cluster.by(record, "orchestrator")} == set(ORCHESTRATORS),
        timeout=30,
    )
    figure("rules evaluated", count)


# -- idempotency --------------------------------------------------------------------------

RETRY_CODES = {"idempotency_request_in_progress", "effect_in_progress"}


def post_until_answered(cluster: Cluster, host: str, key: str, start: threading.Barrier) -> Any:
    """POST with ``key`` once both clients are ready; again while the key's first request
    is in progress (a 409 that says so), as the answer tells a client to."""
    start.wait()
    for _ in range(100):
        answer = cluster.post(host, key=key)
        assert answer is not None
        if answer.status == 409 and answer.json()["error"]["code"] in RETRY_CODES:
            time.sleep(0.2)
            continue
        return answer
    raise AssertionError(f"{key} still in progress on {host}")


def test_one_idempotency_key_sent_to_two_hosts_at_once_makes_one_order(cluster: Cluster) -> None:
    rounds = 3
    orders_before = cluster.sql("SELECT count(*) FROM orders_order")[0][0]
    for _ in range(rounds):
        charges_before, _ = cluster.books_now()
        key = uuid.uuid4().hex
        start = threading.Barrier(2)
        on_a, on_b = (
            future.result()
            for future in [
                cluster.client.submit(post_until_answered, cluster, host, key, start)
                for host in ("a", "b")
            ]
        )
        assert on_a.status == on_b.status == 201, (on_a, on_b)
        assert on_a.json() == on_b.json(), "two hosts gave two answers to one key"
        replayed = sorted(str(answer.headers.get("Idempotent-Replayed")) for answer in (on_a, on_b))
        assert replayed == ["None", "true"], replayed
        charges, _ = cluster.books_now()
        new = {charge for charge in charges if charge not in charges_before}
        assert len(new) == 1, new
        order_id = on_a.json()["data"]["id"]
        reference = cluster.sql(
            "SELECT payment_reference FROM orders_order WHERE id = %s", order_id
        )
        assert reference == [(new.pop(),)]
    orders_after = cluster.sql("SELECT count(*) FROM orders_order")[0][0]
    assert orders_after - orders_before == rounds
    figure(
        "idempotency: keys sent to a and b at once / orders / captures / equal answers",
        f"{rounds} / {rounds} / {rounds} / {rounds}",
    )


# -- throttles and lockout --------------------------------------------------------------


def token_attempt(cluster: Cluster, host: str, username: str, password: str, source: str) -> Any:
    return cluster.request(
        host,
        "/api/auth/token/",
        method="POST",
        body={"username": username, "password": password},
        source=source,
    )


def test_lockout_and_throttle_count_attempts_on_every_host(cluster: Cluster) -> None:
    # Wrong passwords alternating between a and b: the account locks at exactly the limit.
    statuses = []
    for attempt in range(AXES_FAILURE_LIMIT):
        host = "ab"[attempt % 2]
        answer = token_attempt(cluster, host, "locked0", "wrong-password", LOCKOUT_CLIENT)
        statuses.append(answer.status)
    assert statuses == [401] * (AXES_FAILURE_LIMIT - 1) + [429], statuses
    # Locked on both hosts, even with the right password, and through the balancer.
    for host in ("a", "b", "lb"):
        answer = token_attempt(cluster, host, "locked0", "right-password", LOCKOUT_CLIENT)
        assert answer.status == 429, (host, answer)
        assert answer.json()["error"]["code"] == "locked_out"
    # One attempt short of the limit spread over both hosts locks nothing.
    for attempt in range(AXES_FAILURE_LIMIT - 1):
        host = "ba"[attempt % 2]
        answer = token_attempt(cluster, host, "locked1", "wrong-password", OTHER_CLIENT)
        assert answer.status == 401, answer
    assert token_attempt(cluster, "a", "locked1", "right-password", OTHER_CLIENT).status == 200
    figure("lockout: wrong passwords over a and b before the lock", AXES_FAILURE_LIMIT)

    # The token endpoint's throttle: the rate is for the client, wherever it lands.
    statuses = [
        token_attempt(cluster, "ab"[n % 2], f"nobody-{n}", "x", THROTTLE_CLIENT).status
        for n in range(TOKEN_THROTTLE + 2)
    ]
    assert statuses == [401] * TOKEN_THROTTLE + [429, 429], statuses
    # Through the balancer the client is the address nginx saw, not nginx.
    answer = token_attempt(cluster, "lb", "nobody", "x", THROTTLE_CLIENT)
    assert answer.status == 429, answer
    assert token_attempt(cluster, "lb", "locked2", "right-password", CLIENT).status == 200
    figure(
        "throttle: token requests over a and b before 429",
        f"{TOKEN_THROTTLE} (rate {TOKEN_THROTTLE}/min)",
    )


# -- run records -------------------------------------------------------------------------


def test_run_records_of_every_host_appear_in_one_run_explorer(cluster: Cluster) -> None:
    ids = {}
    for host in ("a", "b"):
        for token in ("tok_visa", "tok_declined"):
            request_id = f"mh-{host}-{token}-{uuid.uuid4().hex[:12]}"
            answer = cluster.order(host, token=token, request_id=request_id).result()
            assert answer is not None
            assert answer.status in (201, 402), answer
            assert answer.headers["X-Request-ID"] == request_id
            ids[request_id] = host
    cluster.wait_for_deliveries()
    # The records are written after each response: wait until all are there.
    wait_for(
        "the run records of both hosts",
        lambda: (
            cluster.sql(
                "SELECT count(*) FROM orchestration_runrecord WHERE request_id = ANY(%s)", list(ids)
            )[0][0]
            == len(ids)
        ),
        timeout=30,
    )
    # One explorer, served by host b, lists them all (host a's too).
    output = cluster.manage(
        "b",
        "shell",
        "-c",
        EXPLORER,
        EXPLORER_USER=ADMIN,
        EXPLORER_HOST=cluster.lab.address("b"),
        EXPLORER_IDS=json.dumps(list(ids)),
    )
    explorer = json.loads(output.split("EXPLORER", 1)[1])
    assert explorer["status"] == 200
    assert all(explorer["listed"].values()), explorer
    assert all(count > 0 for count in explorer["found"].values()), explorer
    # The successful runs' after-commit steps, run on host c, are on the same records' rows.
    done = cluster.sql(
        "SELECT request_id, count(*) FROM orchestration_queuedstep "
        "WHERE state = 'done' AND request_id = ANY(%s) GROUP BY request_id",
        list(ids),
    )
    assert {request_id for request_id, _ in done} == {i for i in ids if "visa" in i}
    figure(
        "run explorer: records from a / b",
        f"{sum(h == 'a' for h in ids.values())} / {sum(h == 'b' for h in ids.values())}",
    )


# -- losing the worker host ------------------------------------------------------------


def test_losing_the_worker_host_mid_delivery_delivers_every_step(cluster: Cluster) -> None:
    assert cluster.mailbox is not None
    cluster.wait_for_deliveries()
    mailbox = cluster.mailbox
    mailbox.stalled.clear()
    mailbox.stall = BOUND
    already = set(mailbox.order_ids())
    placed = [cluster.order("lb").result() for _ in range(3)]
    assert [answer.status for answer in placed if answer] == [201] * 3, placed
    order_ids = [answer.json()["data"]["id"] for answer in placed if answer]
    request_ids = [answer.json()["request_id"] for answer in placed if answer]
    assert mailbox.stalled.wait(BOUND), tail(cluster.logs.glob("c-*-rqworker.log"))
    killed = cluster.lab.kill_host("c")
    assert killed, "host c had no process"
    mailbox.stall = 0
    cluster.start_host_c()
    cluster.wait_for_deliveries()

    rows = cluster.sql(
        "SELECT id, step, state, attempts, dispatches FROM orchestration_queuedstep "
        "WHERE request_id = ANY(%s)",
        request_ids,
    )
    assert len(rows) == 2 * len(order_ids)  # a confirmation and the analytics, each
    assert all(state == "done" for _, _, state, _, _ in rows), rows
    emails = {str(pk): attempts for pk, step, _, attempts, _ in rows if step == "send_confirmation"}
    # The step the worker was killed in was delivered again, under the same dedupe key.
    assert max(emails.values()) == 2, rows
    confirmations = mailbox.confirmations()
    for order_id in order_ids:
        assert confirmations[order_id] >= 1, confirmations
    assert not already & set(order_ids)
    message_ids = {m.strip("<>").split("@")[0] for m in mailbox.message_ids}
    assert set(emails) <= message_ids
    figure(
        "worker host killed: steps / done / delivered twice",
        f"{len(rows)} / {len(rows)} / {sum(a == 2 for _, _, _, a, _ in rows)}",
    )


# -- losing an app host ------------------------------------------------------------------


def test_losing_an_app_host_with_charges_in_flight(cluster: Cluster) -> None:
    """Every process of host a is killed while it holds captured charges; recovery from
    host b settles every journaled effect after the lease, and host c delivers what a queued."""
    charges_before, _ = cluster.books_now()
    # Committed on a: their after-commit steps are queued by a.
    committed_ids = [f"mh-a-committed-{uuid.uuid4().hex[:12]}" for _ in range(2)]
    for request_id in committed_ids:
        answer = cluster.order("a", request_id=request_id).result()
        assert answer is not None
        assert answer.status == 201, answer
    # Then charges in flight on a: two workers, six requests, each charge held HOLD s.
    keys = [uuid.uuid4().hex for _ in range(6)]
    flight_ids = [f"mh-a-flight-{n}-{uuid.uuid4().hex[:12]}" for n in range(len(keys))]
    futures = [
        cluster.order("a", key=key, request_id=request_id)
        for key, request_id in zip(keys, flight_ids, strict=True)
    ]
    wait_for(
        "host a holding a captured charge",
        lambda: cluster.holding() & cluster.lab.pids("a"),
        timeout=BOUND,
    )
    killed = cluster.lab.kill_host("a")
    killed_at = time.monotonic()
    answers = [future.result() for future in futures]
    lost = [key for key, answer in zip(keys, answers, strict=True) if answer is None]
    assert lost, answers
    assert not cluster.lab.pids("a")

    # The balancer answers from b alone.
    for _ in range(4):
        assert cluster.request("lb", "/health/").status == 200

    def paid_references() -> Counter[str]:
        return Counter(
            reference
            for (reference,) in cluster.sql(
                "SELECT payment_reference FROM orders_order WHERE status <> 'cancelled' "
                "AND payment_reference <> ''"
            )
        )

    charges, refunded = cluster.books_now()
    orphans = set(charges) - set(charges_before) - refunded - set(paid_references())
    assert orphans, "host a died holding no capture"

    # Within the lease, recovery from b leaves the dead host's entries alone...
    early = cluster.manage("b", "recover_effects")
    assert time.monotonic() - killed_at < LEASE, "the early pass came after the lease"
    assert early.startswith("compensated 0,"), early
    assert cluster.books_now()[1] == refunded
    # ...and after it, compensates each of them.
    time.sleep(max(0.0, killed_at + LEASE + 1 - time.monotonic()))
    report = cluster.manage("b", "recover_effects")
    compensated, failed = (int(part.split()[-1]) for part in report.split(",")[:2])
    assert compensated >= len(orphans), report
    assert failed == 0, report
    again = cluster.manage("b", "recover_effects")
    assert again.startswith("compensated 0, failed 0"), again

    charges, refunded = cluster.books_now()
    paid = paid_references()
    assert max(paid.values()) == 1, "one capture for two orders"
    cancelled = {
        reference
        for (reference,) in cluster.sql(
            "SELECT payment_reference FROM orders_order WHERE status = 'cancelled'"
        )
    }
    for charge in charges:
        if charge in refunded:
            assert charge not in paid, f"{charge} was refunded but its order stands"
        else:
            assert paid[charge] == 1 or charge in cancelled, f"{charge}: a capture without order"
    assert not cluster.sql(
        "SELECT key, state FROM orchestration_effectrecord WHERE state IN "
        "('pending', 'rollback_incomplete')"
    )
    # One capture per key at most: the gateway saw no key twice, and no order paid twice.
    assert len(set(charges.values())) == len(charges)

    # The lost requests, retried on b with their keys: one that died in its charge is
    # refused (its capture was refunded), one that committed is replayed, and one that
    # never left a's listen queue runs now, once.
    retried = [cluster.order("b", key=key).result() for key in lost]
    assert all(retried), retried
    refused = [a for a in retried if a is not None and a.status == 409]
    assert all(a.json()["error"]["code"] == "request_rolled_back" for a in refused), refused
    assert len(refused) == compensated, (retried, report)
    fresh = [
        a
        for a in retried
        if a is not None and a.status == 201 and a.headers.get("Idempotent-Replayed") != "true"
    ]
    assert len(refused) + len(fresh) <= len(lost)
    after_retries, _ = cluster.books_now()
    assert set(after_retries) - set(charges) == {
        a.json()["data"]["payment_reference"] for a in fresh
    }
    assert len(after_retries) - len(charges) == len(fresh)

    # What a queued before it died, c delivered.
    cluster.wait_for_deliveries()
    steps = cluster.sql(
        "SELECT request_id, state FROM orchestration_queuedstep WHERE request_id = ANY(%s)",
        committed_ids + flight_ids,
    )
    assert {request_id for request_id, _ in steps} >= set(committed_ids)
    assert all(state == "done" for _, state in steps), steps

    new_charges = set(charges) - set(charges_before)
    figure(
        "host a killed: requests / answered / lost / processes killed",
        f"{len(keys)} / {len(keys) - len(lost)} / {len(lost)} / {len(killed)}",
    )
    figure(
        "host a killed: captures / orders paid / refunds by recovery / double captures",
        f"{len(new_charges)} / {len(new_charges & set(paid))} / {compensated} / 0",
    )
    figure("host a killed: after-commit steps queued by a, delivered by c", len(steps))
