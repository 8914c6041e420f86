"""``POST /api/orders/`` with a healthy mail server and with one that stalls 5 s per message.

One gunicorn (two sync workers) and one task worker (``db_worker``) on the
benchmark's PostgreSQL database; one real SMTP server (aiosmtpd) that either
answers at once or holds every message 5 s before accepting it. ``wrk``
drives the orchestrated endpoint, whose confirmation is queued in the run's
transaction and sent by the task worker, in healthy / stalled / stalled /
healthy rounds. For reference the same job written inline, which sends the
email in the request after the commit (as the engine used to), runs one round
each way (15 s, so that requests held by the stall can finish inside it; wrk
gives up on a request after 10 s and counts it under "timeouts"). Figures go
to ``bench-results/smtp_stall.json`` and ``.md``; nothing here asserts a timing.
"""

from __future__ import annotations

import json
import shutil
import sys
from typing import Any

import pytest

from tests.bench.load import (
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
from tests.reliability.smtp import Mailbox
from tests.reliability.test_outbox_crash import spawn, stop, worker_command
from tests.servers import free_port, running_gunicorn

pytestmark = pytest.mark.bench

STALL = 5.0
ROUNDS = ("healthy", "stalled", "stalled", "healthy")
ENDPOINTS = {"orchestrated": "/api/orders/", "inline": "/api/bench/inline-orders/"}


def test_create_order_with_a_healthy_and_a_stalled_mail_server(bench_database: str) -> None:
    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed: `make bench` installs it (Debian package wrk).")
    mailbox = Mailbox(free_port())
    environment = machine(
        bench_database,
        gunicorn_workers=WORKERS,
        task_workers=1,
        wrk_connections=CONNECTIONS,
        seconds_per_round=SECONDS,
        seconds_per_inline_round=max(SECONDS, round(3 * STALL)),
        stall_seconds=STALL,
        runner=sys.executable,
    )
    env, first_product = seeded_environment(
        bench_database,
        EMAIL_URL=f"smtp://127.0.0.1:{mailbox.port}",
        # Longer than the stall: the inline endpoint waits the stall out rather than failing.
        EMAIL_TIMEOUT="10",
    )
    rounds: dict[str, list[dict[str, Any]]] = {}
    mailbox.start()
    with wrk_script() as script:
        worker = spawn(worker_command("database"), env, script.parent / "worker.log")
        try:
            with running_gunicorn(
                env, workers=WORKERS, extra_args=["--access-logfile", "/dev/null"]
            ) as server:
                wrk_env = wrk_environment(server.url, first_product)
                run_wrk(f"{server.url}{ENDPOINTS['orchestrated']}", 3, wrk_env, script)
                plan = [("orchestrated", mail) for mail in ROUNDS]
                plan += [("inline", "healthy"), ("inline", "stalled")]
                for endpoint, mail in plan:
                    mailbox.stall = STALL if mail == "stalled" else 0.0
                    # Long enough for requests held by the stall to finish inside the round.
                    seconds = max(SECONDS, round(3 * STALL)) if endpoint == "inline" else SECONDS
                    result = run_wrk(f"{server.url}{ENDPOINTS[endpoint]}", seconds, wrk_env, script)
                    rounds.setdefault(f"{endpoint}, {mail} SMTP", []).append(result)
        finally:
            stop(worker)
            mailbox.stop()
    environment["load_average_after"] = load_average()

    results = {name: summarize(values) for name, values in rounds.items()}
    healthy = results["orchestrated, healthy SMTP"]
    stalled = results["orchestrated, stalled SMTP"]
    ratios = {
        "p50": round(stalled["p50_ms"] / healthy["p50_ms"], 3),
        "p99": round(stalled["p99_ms"] / healthy["p99_ms"], 3),
        "rps": round(stalled["rps"] / healthy["rps"], 3),
    }
    table = [
        "| endpoint, mail server | requests | req/s | p50 ms | p99 ms | non-2xx | timeouts |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, result in results.items():
        table.append(
            f"| {name} | {result['requests']} | {result['rps']} | {result['p50_ms'] or '-'} | "
            f"{result['p99_ms'] or '-'} | {result['non_2xx']} | {result['socket_errors']} |"
        )
    table += [
        "",
        (
            f"orchestrated, stalled/healthy: p50 {ratios['p50']}, p99 {ratios['p99']}, "
            f"req/s {ratios['rps']}"
        ),
        "",
        f"Environment: {json.dumps(environment)}",
    ]
    md_path = write_results(
        "smtp_stall",
        "POST /api/orders/ with a healthy and a stalled (5 s) SMTP server",
        {"environment": environment, "results": results, "ratios": ratios},
        table,
    )
    print("\n" + "\n".join(table))
    print(f"\nresults: {md_path}")
    assert healthy["requests"] > 0
    assert stalled["requests"] > 0
    assert healthy["non_2xx"] == stalled["non_2xx"] == 0
