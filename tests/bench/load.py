"""What the load benchmarks share: the bench database, the seeded app, ``wrk`` and its figures.

``test_end_to_end.py`` and ``test_smtp_stall.py`` serve the app under gunicorn
on a PostgreSQL database of their own (``BENCH_DATABASE_URL``, dropped and
created again), seed a user and products, and drive endpoints with ``wrk``
(one thread, ``CONNECTIONS`` connections) and a Lua script that posts a
two-line order with a JWT. Each ``wrk`` run is a *round*; its latency
histogram comes back whole, so that the rounds of one endpoint are pooled
into exact percentiles rather than averaged ones.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import django
import psycopg
import pytest

from tests.servers import app_env, http_request, manage

RESULTS_DIR = Path(__file__).resolve().parents[2] / "bench-results"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/bench_e2e"
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
HOW_TO_RUN = (
    "The end-to-end benchmark needs PostgreSQL: it drops, creates and finally drops the "
    "database that BENCH_DATABASE_URL names, which must be called bench_* so that no other "
    f"database can be lost (default {DEFAULT_DATABASE_URL}). Run it with: "
    "BENCH_DATABASE_URL=postgres://USER@HOST:5432/bench_e2e make bench"
)
#: Seconds of one round.
SECONDS = int(os.environ.get("BENCH_E2E_SECONDS", "5"))
CONNECTIONS = int(os.environ.get("BENCH_E2E_CONNECTIONS", "4"))
#: Gunicorn sync workers per server.
WORKERS = 2
PRODUCTS = 20
USERNAME, PASSWORD = "bench", "bench-password-not-secret"
BODY = "2 lines (random products of 20), tok_visa; console email backend"

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
    local buckets = {}
    for i = 1, #latency do
        local value, count = latency(i)
        buckets[#buckets + 1] = string.format("[%d, %d]", value, count)
    end
    io.write(string.format(
        'WRK_RESULT {"requests": %d, "duration_us": %d, "non_2xx": %d, "socket_errors": %d, '
        .. '"latency_us": [%s]}\\n',
        summary.requests, summary.duration, errors.status,
        errors.connect + errors.read + errors.write + errors.timeout,
        table.concat(buckets, ", ")))
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


def bench_database() -> Iterator[str]:
    """The body of the ``bench_database`` fixture: an empty ``bench_*`` database, dropped after."""
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


def seeded_environment(database_url: str, **overrides: str) -> tuple[dict[str, str], int]:
    """The server environment on a migrated database with the bench user and products,
    and the id of the first product."""
    env = app_env(
        database_url=database_url,
        DJANGO_SETTINGS_MODULE="tests.bench.settings",
        LOG_LEVEL="WARNING",
        **overrides,
    )
    manage(env, "migrate", "--no-input")
    seeded = manage(
        env, "shell", "-c", SEED.format(username=USERNAME, password=PASSWORD, products=PRODUCTS)
    )
    return env, int(seeded.split("FIRST_PRODUCT")[1].split()[0])


def wrk_environment(server_url: str, first_product: int) -> dict[str, str]:
    """What the Lua script reads: a fresh JWT of the bench user and the products."""
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


@contextmanager
def wrk_script() -> Iterator[Path]:
    """A temporary directory holding the Lua script (``orders.lua``); yields the script."""
    with tempfile.TemporaryDirectory(prefix="bench-") as directory:
        script = Path(directory) / "orders.lua"
        script.write_text(WRK_SCRIPT)
        yield script


def run_wrk(url: str, seconds: int, env: Mapping[str, str], script: Path) -> dict[str, Any]:
    """One round: ``wrk`` on ``url`` for ``seconds``; counts, req/s and the latency histogram."""
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
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    )
    line = next(line for line in completed.stdout.splitlines() if line.startswith("WRK_RESULT "))
    result = json.loads(line.removeprefix("WRK_RESULT "))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


def percentile(histogram: Counter[int], share: float) -> float | None:
    """The smallest latency (ms) that at least ``share`` of the requests did not exceed."""
    needed, seen = share * sum(histogram.values()), 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= needed:
            return round(value / 1000, 2)
    return None


def summarize(rounds: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The rounds of one endpoint pooled: req/s over their whole duration, exact percentiles
    over all their requests; the rounds themselves without their histograms."""
    rounds = list(rounds)
    histogram: Counter[int] = Counter()
    for result in rounds:
        histogram.update(dict(result["latency_us"]))
    requests = sum(r["requests"] for r in rounds)
    seconds = sum(r["duration_us"] for r in rounds) / 1e6
    latencies = sum(histogram.values())
    return {
        "requests": requests,
        "rps": round(requests / seconds, 1),
        "p50_ms": percentile(histogram, 0.50),
        "p90_ms": percentile(histogram, 0.90),
        "p99_ms": percentile(histogram, 0.99),
        "mean_ms": round(sum(v * c for v, c in histogram.items()) / latencies / 1000, 2)
        if latencies
        else None,
        "non_2xx": sum(r["non_2xx"] for r in rounds),
        "socket_errors": sum(r["socket_errors"] for r in rounds),
        "rounds": [
            {"requests": r["requests"], "rps": round(r["rps"], 1), "s": r["duration_us"] / 1e6}
            for r in rounds
        ],
    }


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def postgres_version(database_url: str) -> str:
    url = urlunsplit(urlsplit(database_url)._replace(scheme="postgresql"))
    with psycopg.connect(url, connect_timeout=5) as connection:
        row = connection.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "?"


def machine(database_url: str | None = None, **extra: Any) -> dict[str, Any]:
    """Where the figures come from: cores, load, versions; ``extra`` adds the run's settings."""
    described: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)),
        "load_average": load_average(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "django": django.get_version(),
    }
    if database_url:
        described["postgresql"] = postgres_version(database_url)
    described.update(extra)
    return described


def write_results(name: str, title: str, data: Mapping[str, Any], markdown: Iterable[str]) -> Path:
    """``bench-results/<name>.json`` and ``.md`` (``title``, then ``markdown``); the .md path."""
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")
    path = RESULTS_DIR / f"{name}.md"
    path.write_text(f"# {title}\n\n" + "\n".join(markdown) + "\n")
    return path
