"""``POST /api/orders/`` end to end: the orchestrated endpoint against the same job by hand.

- ``journal``: the orchestrator as it ships, everything on at its defaults:
  ``charge_payment`` journaled (its intent committed before the call on the
  journal's own connection, without waiting for the disk), the after-commit
  steps queued in the run's transaction (``QueuedStep`` rows and task rows; no
  task worker runs), run records at the default sampling;
- ``durable``: the same job by hand with the same guarantees
  (``durable_orders.py``): the charge's intent committed before the call, settled
  in the order's transaction, the email and analytics as two tasks enqueued in
  it. journal/durable is what the engine costs; the goals are set on it;
- ``inline``: the same job by hand in the request (``inline_orders.py``), not
  crash-safe: no intent, the email sent in the request. journal/inline is what
  the engine and durability cost together;
- ``dbos`` (extra): the same steps as a DBOS Transact workflow
  (``dbos_orders.py``), every step checkpointed in DBOS's system database;
- ``journal_async`` (extra): the orchestrator with
  ``ORCHESTRATION_JOURNAL_SYNCHRONOUS_COMMIT=0``, the pre-call commit not
  waiting for the disk (the opt-in that can lose an intent in a database crash):
  journal/journal_async is what durable intents cost.

Gunicorns (``config/gunicorn.conf.py``, two sync workers each, production-like
settings plus ``tests/bench/urls.py``; a second one with the synchronous
journal when that extra runs) serve from one PostgreSQL database
(``BENCH_DATABASE_URL``, dropped and created again), and ``wrk`` drives them
(``load.py``). The comparison runs ``BENCH_E2E_REPETITIONS`` times (default
3); each repetition gives each of journal, durable and inline
``BENCH_E2E_ROUNDS`` rounds (default 6, an even number) in mirrored blocks
(A B C C B A, then B C A A C B, ...: the next block, and the next repetition,
starts with the next endpoint), with one round of each extra
(``BENCH_E2E_EXTRAS``, default ``dbos,journal_async``; empty for none) in the
middle. Per repetition: the ratios of req/s, p50 and p99 (percentiles over all
the requests of the repetition's rounds); then the median of each ratio over
the repetitions and its spread, so that one quiet or noisy minute cannot
decide the result. What one request sends to PostgreSQL on each endpoint
(``statements.py``) comes with the figures.

Figures are printed and written to ``bench-results/end_to_end.json`` and
``.md`` (and ``queries.json``/``.md``); nothing here asserts a timing.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import time
from collections.abc import Mapping
from contextlib import ExitStack
from typing import Any

import psycopg
import pytest

from tests.bench import statements
from tests.bench.load import (
    BODY,
    CONNECTIONS,
    SECONDS,
    WORKERS,
    load_average,
    machine,
    run_wrk,
    seeded_environment,
    summarize,
    write_results,
    wrk_environment,
    wrk_script,
)
from tests.servers import running_gunicorn

pytestmark = pytest.mark.bench

REPETITIONS = int(os.environ.get("BENCH_E2E_REPETITIONS", "3"))
#: Rounds of each main endpoint per repetition: an even number (mirrored blocks).
ROUNDS = int(os.environ.get("BENCH_E2E_ROUNDS", "6"))
#: One round each per repetition, in the middle of it.
EXTRAS = tuple(
    name.strip()
    for name in os.environ.get("BENCH_E2E_EXTRAS", "dbos,journal_async").split(",")
    if name.strip()
)
#: Compared in every repetition, in mirrored blocks.
MAIN = ("journal", "durable", "inline")
ENDPOINTS = {
    "journal": "/api/orders/",
    "durable": "/api/bench/durable-orders/",
    "inline": "/api/bench/inline-orders/",
    "dbos": "/api/bench/dbos-orders/",
    "journal_async": "/api/orders/",
}
#: Served by the second gunicorn, whose journal waits for the disk.
ASYNCHRONOUS_JOURNAL = {"journal_async"}
#: The ratios reported: (name, numerator, denominator).
RATIO_PAIRS = (("", "journal", "durable"), ("inline ", "journal", "inline"))
#: Met (or not) by the medians of journal/durable over the repetitions; printed, never asserted.
GOALS = {"rps": (">=", 0.98), "p99": ("<=", 1.10)}
RATIOS = ("rps", "p50", "p99")
WARM_UP_SECONDS = 3


def plan(repetition: int) -> list[str]:
    """The rounds of one repetition: mirrored blocks (A B C C B A), each block starting
    with the next endpoint; the extras in the middle."""
    rounds: list[str] = []
    for block in range(ROUNDS // 2):
        start = (repetition + block) % len(MAIN)
        rotated = MAIN[start:] + MAIN[:start]
        rounds += [*rotated, *reversed(rotated)]
    extras = list(EXTRAS if repetition % 2 == 0 else reversed(EXTRAS))
    middle = len(rounds) // 2
    return rounds[:middle] + extras + rounds[middle:]


def ratios(results: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """journal/durable and journal/inline (req/s, p50, p99), durable/inline and
    extra/inline (req/s) of one repetition."""
    found: dict[str, float] = {}
    for prefix, top, bottom in RATIO_PAIRS:
        found[f"{prefix}rps"] = results[top]["rps"] / results[bottom]["rps"]
        found[f"{prefix}p50"] = results[top]["p50_ms"] / results[bottom]["p50_ms"]
        found[f"{prefix}p99"] = results[top]["p99_ms"] / results[bottom]["p99_ms"]
    inline = results["inline"]["rps"]
    found["durable rps"] = results["durable"]["rps"] / inline
    found.update({f"{extra} rps": results[extra]["rps"] / inline for extra in EXTRAS})
    return {name: round(value, 3) for name, value in found.items()}


def label(name: str) -> str:
    """What a ratio's key means, for the report."""
    if name in RATIOS:
        return f"journal/durable {name} (the engine's cost)"
    if name.startswith("inline "):
        return f"journal/inline {name.removeprefix('inline ')} (the engine and durability)"
    return name.replace(" ", "/inline ")


def goal(name: str, value: float) -> str:
    direction, bound = GOALS[name]
    met = value >= bound if direction == ">=" else value <= bound
    return f"goal {direction} {bound}: {'met' if met else 'not met'}"


def test_create_order_three_ways_under_gunicorn(bench_database: str) -> None:
    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed: `make bench` installs it (Debian package wrk).")
    unknown = [name for name in EXTRAS if name not in ENDPOINTS or name in MAIN]
    assert not unknown, f"BENCH_E2E_EXTRAS names no extra endpoint: {unknown}"
    assert ROUNDS >= 2, "BENCH_E2E_ROUNDS must be at least 2"
    assert ROUNDS % 2 == 0, "BENCH_E2E_ROUNDS must be an even number"
    started = time.monotonic()
    environment = machine(
        bench_database,
        gunicorn_workers=WORKERS,
        wrk_connections=CONNECTIONS,
        seconds_per_round=SECONDS,
        rounds_per_repetition={**dict.fromkeys(MAIN, ROUNDS), **dict.fromkeys(EXTRAS, 1)},
        repetitions=REPETITIONS,
        body=BODY,
    )
    env, first_product = seeded_environment(bench_database)
    counts = statements.measure(env)

    rounds: dict[str, list[dict[str, Any]]] = {}
    repetitions: list[dict[str, Any]] = []
    with wrk_script() as script, ExitStack() as stack:
        env["FAKE_GATEWAY_BOOKS"] = str(script.parent / "gateway-books.sqlite3")
        quiet = ["--access-logfile", "/dev/null"]
        server = stack.enter_context(running_gunicorn(env, workers=WORKERS, extra_args=quiet))
        async_server = server
        if ASYNCHRONOUS_JOURNAL & set(EXTRAS):
            async_env = {**env, "ORCHESTRATION_JOURNAL_SYNCHRONOUS_COMMIT": "0"}
            async_server = stack.enter_context(
                running_gunicorn(async_env, workers=WORKERS, extra_args=quiet)
            )
        wrk_env = wrk_environment(server.url, first_product)
        urls = {
            name: f"{(async_server if name in ASYNCHRONOUS_JOURNAL else server).url}{path}"
            for name, path in ENDPOINTS.items()
            if name in (*MAIN, *EXTRAS)
        }
        for url in urls.values():  # warm-up: imports, connections, caches, DBOS launch
            run_wrk(url, WARM_UP_SECONDS, wrk_env, script)
        for repetition in range(REPETITIONS):
            order = plan(repetition)
            load_before = load_average()
            these: dict[str, list[dict[str, Any]]] = {name: [] for name in urls}
            for name in order:
                result = run_wrk(urls[name], SECONDS, wrk_env, script)
                these[name].append(result)
                rounds.setdefault(name, []).append(result)
            results = {name: summarize(values) for name, values in these.items()}
            repetitions.append(
                {
                    "order": order,
                    "load_average_before": load_before,
                    "ratios": ratios(results),
                    "results": results,
                }
            )
    environment["load_average_after"] = load_average()
    environment["seconds"] = round(time.monotonic() - started)

    medians = {
        name: {
            "median": statistics.median(values),
            "min": min(values),
            "max": max(values),
        }
        for name in repetitions[0]["ratios"]
        for values in [[rep["ratios"][name] for rep in repetitions]]
    }
    pooled = {name: summarize(values) for name, values in rounds.items()}

    lines = [
        (
            "journal (orchestrated, defaults) against durable (by hand, the same guarantees) "
            "and inline (by hand, in the request), per repetition:"
        ),
        "",
        (
            "| repetition | load before | journal req/s | durable req/s | inline req/s | "
            "journal/durable req/s | p50 | p99 | journal/inline req/s | p50 | p99 |"
        ),
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for number, rep in enumerate(repetitions, 1):
        results, found = rep["results"], rep["ratios"]
        lines.append(
            f"| {number} | {rep['load_average_before'][0]} | {results['journal']['rps']} | "
            f"{results['durable']['rps']} | {results['inline']['rps']} | {found['rps']} | "
            f"{found['p50']} | {found['p99']} | {found['inline rps']} | {found['inline p50']} | "
            f"{found['inline p99']} |"
        )
    lines += ["", "Median over the repetitions (spread min-max):", ""]
    for name, value in medians.items():
        verdict = f" ({goal(name, value['median'])})" if name in GOALS else ""
        lines.append(
            f"- {label(name)}: **{value['median']}** ({value['min']}-{value['max']}){verdict}"
        )
    lines += [
        "",
        "All rounds pooled, per endpoint:",
        "",
        "| endpoint | requests | req/s | p50 ms | p90 ms | p99 ms | non-2xx | socket errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, result in pooled.items():
        lines.append(
            f"| {name} | {result['requests']} | {result['rps']} | {result['p50_ms']} | "
            f"{result['p90_ms']} | {result['p99_ms']} | {result['non_2xx']} | "
            f"{result['socket_errors']} |"
        )
    lines += ["", "What one request sends to PostgreSQL:", "", *statements.table(counts)]
    lines += [
        "",
        f"Environment: {json.dumps(environment)}",
        f"Statements listed in {statements.write(counts, environment)}",
    ]
    path = write_results(
        "end_to_end",
        "POST /api/orders/ under gunicorn on PostgreSQL",
        {
            "environment": environment,
            "goals": {name: list(bound) for name, bound in GOALS.items()},
            "medians": medians,
            "repetitions": repetitions,
            "pooled": pooled,
            "statements": {
                name: {key: value for key, value in count.items() if key != "statements"}
                for name, count in counts.items()
            },
        },
        lines,
    )
    print("\n" + "\n".join(lines))
    print(f"\nresults: {path}")
    for result in pooled.values():
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
    environment = machine(bench_database, gunicorn_workers=WORKERS, wrk_connections=CONNECTIONS)
    env, first_product = seeded_environment(bench_database)
    settings = {"on": "1", "off": "0"}
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in settings}
    with wrk_script() as script, ExitStack() as stack:
        env["FAKE_GATEWAY_BOOKS"] = str(script.parent / "gateway-books.sqlite3")
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
            run_wrk(f"{server.url}/api/orders/", WARM_UP_SECONDS, wrk_env, script)
        with psycopg.connect(bench_database) as db:
            db.execute("DELETE FROM orchestration_runrecord")
        for name in RECORDING_ORDER:
            rounds[name].append(
                run_wrk(f"{servers[name].url}/api/orders/", SECONDS, wrk_env, script)
            )
    with psycopg.connect(bench_database) as db:
        row = db.execute("SELECT count(*) FROM orchestration_runrecord").fetchone()
    recorded = row[0] if row else 0
    environment["load_average_after"] = load_average()

    results = {name: summarize(values) for name, values in rounds.items()}
    on, off = results["on"], results["off"]
    ratio = round(on["rps"] / off["rps"], 3)
    lines = [
        "| run records | requests | req/s | p50 ms | p99 ms | recorded |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        (
            f"| on (1 % of successes) | {on['requests']} | {on['rps']} | {on['p50_ms']} | "
            f"{on['p99_ms']} | {recorded} |"
        ),
        f"| off | {off['requests']} | {off['rps']} | {off['p50_ms']} | {off['p99_ms']} | |",
        "",
        f"with records / without: req/s {ratio}",
        "",
        f"Environment: {json.dumps(environment)}",
    ]
    write_results(
        "run_records",
        "POST /api/orders/ with and without run records",
        {"environment": environment, "results": results, "ratio_rps": ratio, "recorded": recorded},
        lines,
    )
    print("\n" + "\n".join(lines))
    for result in results.values():
        assert result["non_2xx"] == 0, "every benchmark request must be a 201"
    # About 1 % of the successes of the recording server are kept.
    assert 0 < recorded < on["requests"] * 0.05


def test_queries_per_request(bench_database: str) -> None:
    """What one request sends to PostgreSQL, orchestrated and hand-written (no load)."""
    env, _ = seeded_environment(bench_database)
    counts = statements.measure(env)
    path = statements.write(counts, machine(bench_database))
    print("\n" + "\n".join(statements.table(counts)))
    print(f"results: {path}")
    orchestrated, inline = counts["orchestrated"], counts["inline"]
    assert inline["transactions"] == 1
    assert orchestrated["transactions"] >= 1
    # The recorded run writes its record: one statement more than the run that is not.
    assert counts["orchestrated, run recorded"]["data_statements"] > orchestrated["data_statements"]
