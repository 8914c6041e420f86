"""``POST /api/orders/`` end to end, the same job three ways (and a fourth setting).

- ``journal``: the orchestrator, with ``charge_payment`` journaled (its intent
  committed before the call on the journal's own connection, without waiting
  for the disk: the default);
- ``inline``: the same job written by hand in the request (``inline_orders.py``),
  no journal;
- ``dbos``: the same steps as a DBOS Transact workflow (``dbos_orders.py``),
  every step checkpointed in DBOS's system database;
- ``journal_fsync``: the orchestrator with
  ``ORCHESTRATION_JOURNAL_SYNCHRONOUS_COMMIT=1``, the pre-call commit waiting
  for the disk: what that commit costs per request.

Two gunicorns (``config/gunicorn.conf.py``, two sync workers each,
production-like settings plus ``tests/bench/urls.py``; the second one with the
synchronous journal) serve from one PostgreSQL database (``bench_e2e``, dropped
and created again); ``wrk`` drives them from its own process with a Lua
script that sends the JSON body and the JWT. The endpoints take turns in
A B C D D C B A rounds, twice, so that drift (cache warm-up, table growth) is
shared. A second test counts the SQL queries of one request on the
orchestrated and inline endpoints with ``CaptureQueriesContext``.

Figures are printed and written to ``bench-results/end_to_end.json`` and
``.md``; nothing here asserts a timing.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from orders.models import Order, Product
from tests.servers import app_env, http_request, manage, running_gunicorn

pytestmark = pytest.mark.bench

RESULTS_DIR = Path(__file__).resolve().parents[2] / "bench-results"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/bench_e2e"
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
HOW_TO_RUN = (
    "The end-to-end benchmark needs PostgreSQL: it drops, creates and finally drops the "
    "database that BENCH_DATABASE_URL names, which must be called bench_* so that no other "
    f"database can be lost (default {DEFAULT_DATABASE_URL}). Run it with: "
    "BENCH_DATABASE_URL=postgres://USER@HOST:5432/bench_e2e make bench"
)
SECONDS = int(os.environ.get("BENCH_E2E_SECONDS", "5"))
#: A B C D D C B A, twice: drift of the machine (other processes, table growth) is shared.
_ROUND = ("journal", "inline", "dbos", "journal_fsync")
ORDER = (*_ROUND, *reversed(_ROUND)) * 2
CONNECTIONS = int(os.environ.get("BENCH_E2E_CONNECTIONS", "4"))
WORKERS = 2
PRODUCTS = 20
USERNAME, PASSWORD = "bench", "bench-password-not-secret"
#: Logged by Django since 4.2 next to the queries; BEGIN and COMMIT of a block that
#: ran no query cost no round trip on PostgreSQL (psycopg begins lazily).
TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE SAVEPOINT")
ENDPOINTS = {
    "journal": "/api/orders/",
    "inline": "/api/bench/inline-orders/",
    "dbos": "/api/bench/dbos-orders/",
    "journal_fsync": "/api/orders/",
}
#: Served by the second gunicorn, whose journal waits for the disk.
SYNCHRONOUS_JOURNAL = {"journal_fsync"}
#: The queries test runs in process (one setting): the endpoints that differ in code.
QUERIED = {"journal": "/api/orders/", "inline": "/api/bench/inline-orders/"}

WRK_SCRIPT = """
local token = os.getenv("BENCH_TOKEN")
local first_product = tonumber(os.getenv("BENCH_FIRST_PRODUCT"))
local products = tonumber(os.getenv("BENCH_PRODUCTS"))
math.randomseed(os.time())

request = function()
    local a = first_product + math.random(0, products - 1)
    local b = first_product + (a - first_product + math.random(1, products - 1)) % products
    local body = string.format(
        '{"items": [{"product": %d, "quantity": 1}, {"product": %d, "quantity": 2}], '
        .. '"payment_token": "tok_visa"}', a, b)
    return wrk.format("POST", nil, {
        ["Content-Type"] = "application/json",
        ["Authorization"] = "Bearer " .. token,
    }, body)
end

done = function(summary, latency, requests)
    local errors = summary.errors
    io.write(string.format(
        'WRK_RESULT {"requests": %d, "duration_us": %d, "non_2xx": %d, "socket_errors": %d, '
        .. '"p50_ms": %.3f, "p90_ms": %.3f, "p99_ms": %.3f, "mean_ms": %.3f}\\n',
        summary.requests, summary.duration, errors.status,
        errors.connect + errors.read + errors.write + errors.timeout,
        latency:percentile(50) / 1000, latency:percentile(90) / 1000,
        latency:percentile(99) / 1000, latency.mean / 1000))
end
"""

SEED = """
from decimal import Decimal
from django.contrib.auth import get_user_model
from orders.models import Product
get_user_model().objects.create_user({username!r}, "bench@example.com", {password!r})
first = None
for number in range({products}):
    product = Product.objects.create(
        sku=f"BENCH-{{number:03d}}", name=f"Bench product {{number}}",
        price=Decimal("12.50"), stock=10**9, active=True,
    )
    first = first or product.pk
print("FIRST_PRODUCT", first)
"""


def _postgres(url: str, *statements: str) -> None:
    admin = urlunsplit(urlsplit(url)._replace(scheme="postgresql", path="/postgres"))
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as admin_connection:
        for statement in statements:
            admin_connection.execute(statement)


@pytest.fixture
def bench_database() -> Iterator[str]:
    name = urlsplit(DATABASE_URL).path.lstrip("/")
    if not name.startswith("bench_"):
        pytest.fail(f"BENCH_DATABASE_URL names {name!r}. {HOW_TO_RUN}")
    try:
        _postgres(
            DATABASE_URL,
            f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
            f'CREATE DATABASE "{name}"',
        )
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL is not reachable at {DATABASE_URL} ({exc}). {HOW_TO_RUN}")
    yield DATABASE_URL
    _postgres(DATABASE_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_wrk(url: str, seconds: int, env: dict[str, str], script: Path) -> dict[str, Any]:
    completed = subprocess.run(
        [
            "wrk",
            "--threads",
            "1",
            "--connections",
            str(CONNECTIONS),
            "--duration",
            f"{seconds}s",
            "--timeout",
            "10s",
            "--script",
            str(script),
            url,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    )
    line = next(line for line in completed.stdout.splitlines() if line.startswith("WRK_RESULT "))
    result = json.loads(line.removeprefix("WRK_RESULT "))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    requests = sum(r["requests"] for r in rounds)
    seconds = sum(r["duration_us"] for r in rounds) / 1e6
    return {
        "requests": requests,
        "rps": round(requests / seconds, 1),
        "median_round_rps": round(statistics.median(r["rps"] for r in rounds), 1),
        "p50_ms": round(sum(r["p50_ms"] for r in rounds) / len(rounds), 2),
        "p90_ms": round(sum(r["p90_ms"] for r in rounds) / len(rounds), 2),
        "p99_ms": round(sum(r["p99_ms"] for r in rounds) / len(rounds), 2),
        "non_2xx": sum(r["non_2xx"] for r in rounds),
        "socket_errors": sum(r["socket_errors"] for r in rounds),
        "rounds": rounds,
    }


def seeded_environment(bench_database: str) -> tuple[dict[str, str], int]:
    """The server environment on a migrated database with the bench user and products."""
    env = app_env(
        database_url=bench_database,
        DJANGO_SETTINGS_MODULE="tests.bench.settings",
        LOG_LEVEL="WARNING",
    )
    manage(env, "migrate", "--no-input")
    seeded = manage(
        env,
        "shell",
        "-c",
        SEED.format(username=USERNAME, password=PASSWORD, products=PRODUCTS),
    )
    return env, int(seeded.split("FIRST_PRODUCT")[1].split()[0])


def wrk_environment(server_url: str, first_product: int) -> dict[str, str]:
    status, _, body = http_request(
        f"{server_url}/api/auth/token/",
        method="POST",
        json_body={"username": USERNAME, "password": PASSWORD},
    )
    assert status == 200, body
    return {
        **os.environ,
        "BENCH_TOKEN": json.loads(body)["access"],
        "BENCH_FIRST_PRODUCT": str(first_product),
        "BENCH_PRODUCTS": str(PRODUCTS),
    }


def test_create_order_three_ways_under_gunicorn(bench_database: str) -> None:
    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed: `make bench` installs it (Debian package wrk).")
    env, first_product = seeded_environment(bench_database)

    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as directory:
        script = Path(directory) / "orders.lua"
        script.write_text(WRK_SCRIPT)
        env["FAKE_GATEWAY_BOOKS"] = str(Path(directory) / "gateway-books.sqlite3")
        quiet = ["--access-logfile", "/dev/null"]
        fsync_env = {**env, "ORCHESTRATION_JOURNAL_SYNCHRONOUS_COMMIT": "1"}
        with (
            running_gunicorn(env, workers=WORKERS, extra_args=quiet) as server,
            running_gunicorn(fsync_env, workers=WORKERS, extra_args=quiet) as fsync_server,
        ):
            wrk_env = wrk_environment(server.url, first_product)
            urls = {
                name: f"{(fsync_server if name in SYNCHRONOUS_JOURNAL else server).url}{path}"
                for name, path in ENDPOINTS.items()
            }
            for url in urls.values():  # warm-up: imports, connections, caches, DBOS launch
                run_wrk(url, 3, wrk_env, script)
            rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in ENDPOINTS}
            for name in ORDER:
                rounds[name].append(run_wrk(urls[name], SECONDS, wrk_env, script))

    results = {name: summarize(values) for name, values in rounds.items()}
    journal, inline, dbos = results["journal"], results["inline"], results["dbos"]
    ratios = {
        "journal/inline rps": round(journal["rps"] / inline["rps"], 3),
        "journal/inline p50": round(journal["p50_ms"] / inline["p50_ms"], 3),
        "journal/inline p99": round(journal["p99_ms"] / inline["p99_ms"], 3),
        "journal/dbos rps": round(journal["rps"] / dbos["rps"], 3),
        "journal_fsync/inline rps": round(results["journal_fsync"]["rps"] / inline["rps"], 3),
        "journal_fsync - journal p50 ms": round(
            results["journal_fsync"]["p50_ms"] - journal["p50_ms"], 2
        ),
    }
    environment = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "database": "postgresql",
        "gunicorn_workers": WORKERS,
        "wrk_connections": CONNECTIONS,
        "seconds_per_side": ORDER.count("inline") * SECONDS,
        "body": "2 lines (random products of 20), tok_visa; console email backend",
    }
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "end_to_end.json").write_text(
        json.dumps({"environment": environment, "results": results, "ratios": ratios}, indent=2)
        + "\n"
    )
    table = [
        "| endpoint | requests | req/s | p50 ms | p90 ms | p99 ms | non-2xx |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, result in results.items():
        table.append(
            f"| {name} | {result['requests']} | {result['rps']} | {result['p50_ms']} | "
            f"{result['p90_ms']} | {result['p99_ms']} | {result['non_2xx']} |"
        )
    table.append("\n" + ", ".join(f"{name}: {value}" for name, value in ratios.items()))
    md_path = RESULTS_DIR / "end_to_end.md"
    md_path.write_text(
        "# POST /api/orders/ under gunicorn on PostgreSQL\n\n"
        f"Environment: {json.dumps(environment)}\n\n" + "\n".join(table) + "\n"
    )
    print("\n" + "\n".join(table))
    print(f"\nresults: {md_path}")
    for result in results.values():
        assert result["requests"] > 0
        assert result["non_2xx"] == 0, "every benchmark request must be a 201"


#: Recording on at the default sampling, and off, in A B B A rounds, twice.
RECORDING_ORDER = ("on", "off", "off", "on") * 2


def test_create_order_with_run_records_against_without(bench_database: str) -> None:
    """The cost of run records: two identical servers on one database, one with
    recording at the default sampling (every failure, 1 % of successes), one
    without, driven in turn."""
    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed: `make bench` installs it (Debian package wrk).")
    env, first_product = seeded_environment(bench_database)
    settings = {"on": "1", "off": "0"}
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in settings}
    with tempfile.TemporaryDirectory(prefix="bench-records-") as directory:
        script = Path(directory) / "orders.lua"
        script.write_text(WRK_SCRIPT)
        env["FAKE_GATEWAY_BOOKS"] = str(Path(directory) / "gateway-books.sqlite3")
        with ExitStack() as stack:
            servers = {
                name: stack.enter_context(
                    running_gunicorn(
                        {**env, "ORCHESTRATION_RUN_RECORDS": value},
                        workers=WORKERS,
                        extra_args=["--access-logfile", "/dev/null"],
                    )
                )
                for name, value in settings.items()
            }
            wrk_env = wrk_environment(servers["on"].url, first_product)
            for server in servers.values():  # warm-up
                run_wrk(f"{server.url}/api/orders/", 3, wrk_env, script)
            with psycopg.connect(bench_database) as db:
                db.execute("DELETE FROM orchestration_runrecord")
            for name in RECORDING_ORDER:
                rounds[name].append(
                    run_wrk(f"{servers[name].url}/api/orders/", SECONDS, wrk_env, script)
                )
    with psycopg.connect(bench_database) as db:
        row = db.execute("SELECT count(*) FROM orchestration_runrecord").fetchone()
    recorded = row[0] if row else 0

    results = {name: summarize(values) for name, values in rounds.items()}
    on, off = results["on"], results["off"]
    ratio = round(on["rps"] / off["rps"], 3)
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "run_records.json").write_text(
        json.dumps({"results": results, "ratio_rps": ratio, "recorded": recorded}, indent=2) + "\n"
    )
    table = [
        "| run records | requests | req/s | p50 ms | p99 ms | recorded |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        (
            f"| on (1 % of successes) | {on['requests']} | {on['rps']} | {on['p50_ms']} | "
            f"{on['p99_ms']} | {recorded} |"
        ),
        f"| off | {off['requests']} | {off['rps']} | {off['p50_ms']} | {off['p99_ms']} | |",
        f"\nwith records / without: req/s {ratio}",
    ]
    (RESULTS_DIR / "run_records.md").write_text(
        "# POST /api/orders/ with and without run records\n\n" + "\n".join(table) + "\n"
    )
    print("\n" + "\n".join(table))
    for result in results.values():
        assert result["non_2xx"] == 0, "every benchmark request must be a 201"
    # About 1 % of the successes of the recording server are kept.
    assert 0 < recorded < on["requests"] * 0.05


@pytest.mark.django_db(transaction=True)
@pytest.mark.urls("tests.bench.urls")
def test_queries_per_request(django_user_model: Any) -> None:
    user = django_user_model.objects.create_user(USERNAME, "bench@example.com", PASSWORD)
    first, second = (
        Product.objects.create(sku=f"Q-{n}", name=f"Product {n}", price="12.50", stock=100)
        for n in range(2)
    )
    client = APIClient()
    response = client.post(
        "/api/auth/token/", {"username": USERNAME, "password": PASSWORD}, format="json"
    )
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {response.json()['access']}")
    body = {
        "items": [{"product": first.pk, "quantity": 1}, {"product": second.pk, "quantity": 2}],
        "payment_token": "tok_visa",
    }
    counts: dict[str, dict[str, Any]] = {}
    for name, path in QUERIED.items():
        client.post(path, body, format="json")  # warm-up: content types, caches
        with CaptureQueriesContext(connection) as captured:
            response = client.post(path, body, format="json")
        assert response.status_code == 201, response.content
        statements = [query["sql"] for query in captured.captured_queries]
        control = [sql for sql in statements if sql.upper().startswith(TRANSACTION_CONTROL)]
        counts[name] = {
            "statements_logged": len(statements),
            "data_queries": len(statements) - len(control),
            "savepoints": sum(sql.upper().startswith("SAVEPOINT") for sql in control),
            "transactions": sum(sql.upper().startswith("BEGIN") for sql in control),
            "statements": statements,
        }
    assert Order.objects.filter(owner=user).count() == 4
    summary = {
        name: {key: value for key, value in count.items() if key != "statements"}
        for name, count in counts.items()
    }
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / "queries.json"
    path.write_text(
        json.dumps({"database": connection.vendor, "per_request": counts}, indent=2) + "\n"
    )
    print(f"\nSQL per POST on {connection.vendor}: {json.dumps(summary)}")
    print(f"results: {path}")
