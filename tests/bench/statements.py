"""What one ``POST /api/orders/`` sends to PostgreSQL, orchestrated and hand-written.

Counted by libpq itself: during one request (after a warm-up one) every
connection the process has open, the request's and the journal's own, traces
its protocol messages (``PGconn.trace``). So every round trip is counted,
including those Django does not log: the health check, the ``BEGIN`` that
psycopg sends before a transaction's first statement (and not at all for a
transaction that sends none), and what the journal runs on its own
connection. A round trip is one ``ReadyForQuery`` from the server.

``measure(env)`` runs ``main()`` in ``manage.py shell`` with the server's
environment (a seeded bench database, see ``load.seeded_environment``), so the
counts are those of the production-like settings the load runs use.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

from tests.bench.load import PASSWORD, USERNAME
from tests.servers import manage

#: The endpoints counted: the real one with the run not sampled (99 % of successes),
#: the real one with the run recorded, and the two hand-written ones (durable: with
#: the journal's intent and the tasks in the transaction, as the orchestrator has them).
ENDPOINTS = {
    "orchestrated": ("/api/orders/", 0.0),
    "orchestrated, run recorded": ("/api/orders/", 1.0),
    "durable": ("/api/bench/durable-orders/", None),
    "inline": ("/api/bench/inline-orders/", None),
}
TRANSACTION = ("BEGIN", "COMMIT", "ROLLBACK")
SAVEPOINT = ("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT")
WRITES = ("INSERT", "UPDATE", "DELETE")
_MESSAGE = re.compile(r"^([FB])\t\d+\t(\w+)\t?(.*)$")
_PARSE = re.compile(r'^ "[^"]*" "(.*)" \d+(?: \S+)*$')


def statements_of(trace: str) -> tuple[list[str], int]:
    """The statements a libpq trace shows the client sending, and its round trips."""
    messages: list[list[str]] = []
    for line in trace.splitlines():
        match = _MESSAGE.match(line)
        if match:
            messages.append(list(match.groups()))
        elif messages:  # a statement's own line breaks
            messages[-1][2] += "\n" + line
    statements, round_trips = [], 0
    for direction, kind, rest in messages:
        if direction == "F" and kind == "Query":
            statements.append(rest.strip()[1:-1])
        elif direction == "F" and kind == "Parse":
            parsed = _PARSE.match(rest)
            statements.append(parsed.group(1) if parsed else rest)
        elif direction == "B" and kind == "ReadyForQuery":
            round_trips += 1
    return statements, round_trips


def commits_of(statements: list[str]) -> int:
    """Commits on the server: of ``BEGIN`` ... ``COMMIT`` blocks, and of writes in autocommit
    (statements sent together, ``SET LOCAL ...; INSERT ...``, commit once)."""
    commits, in_block = 0, False
    for sql in statements:
        upper = sql.upper()
        if upper == "BEGIN":
            in_block = True
        elif upper in ("COMMIT", "ROLLBACK"):
            commits += upper == "COMMIT"
            in_block = False
        elif not in_block and any(part.strip().startswith(WRITES) for part in upper.split(";")):
            commits += 1
    return commits


def tally(per_connection: Mapping[str, tuple[list[str], int]]) -> dict[str, Any]:
    """Round trips, data statements, savepoints, transactions and commits of one request."""
    listed = [
        {"connection": name, "sql": sql}
        for name, (statements, _) in per_connection.items()
        for sql in statements
    ]
    uppers = [s["sql"].upper() for s in listed]
    control = [sql for sql in uppers if sql in TRANSACTION]
    savepoints = [sql for sql in uppers if sql.startswith(SAVEPOINT)]
    return {
        "round_trips": sum(trips for _, trips in per_connection.values()),
        "round_trips_by_connection": {name: t for name, (_, t) in per_connection.items()},
        "data_statements": len(listed) - len(control) - len(savepoints),
        "savepoints": sum(sql.startswith("SAVEPOINT") for sql in savepoints),
        "savepoint_statements": len(savepoints),
        "transactions": control.count("BEGIN"),
        "commits": sum(commits_of(statements) for statements, _ in per_connection.values()),
        "statements": listed,
    }


@contextmanager
def traced(directory: Path) -> Iterator[dict[str, Path]]:
    """Trace every open PostgreSQL connection of the process, and any opened meanwhile
    (named "... opened during the request").

    Yields connection name -> trace file, complete when the block exits.
    """
    import gc

    from django.db import connections
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.backends.signals import connection_created
    from psycopg import pq

    files: dict[str, Path] = {}
    wrappers: list[BaseDatabaseWrapper] = []

    def trace(wrapper: BaseDatabaseWrapper, opened: bool = False) -> None:
        if wrapper.vendor != "postgresql" or wrapper.connection is None:
            return
        if any(traced_wrapper is wrapper for traced_wrapper in wrappers):
            return
        wrappers.append(wrapper)
        name = wrapper.alias
        if wrapper is not connections[wrapper.alias]:
            name += f", another connection ({len(wrappers)})"
        if opened:
            name += ", opened during the request"
        files[name] = directory / f"{len(files)}.trace"
        handle = stack.enter_context(files[name].open("w"))
        pgconn = wrapper.connection.pgconn
        pgconn.trace(handle.fileno())
        pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)

        def untrace() -> None:
            with suppress(Exception):  # a connection closed meanwhile has no trace left
                pgconn.untrace()

        stack.callback(untrace)

    def created(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
        trace(connection, opened=True)

    with ExitStack() as stack:
        # The journal keeps its connection in a thread-local of its own: it is found
        # among the live connection wrappers rather than by a private name.
        for wrapper in [o for o in gc.get_objects() if isinstance(o, BaseDatabaseWrapper)]:
            trace(wrapper)
        connection_created.connect(created)
        stack.callback(connection_created.disconnect, created)
        yield files


def main() -> None:
    """In ``manage.py shell``: one warm-up and one counted POST per endpoint; prints JSON."""
    from django.conf import settings
    from django.db import close_old_connections
    from django.test.utils import override_settings
    from rest_framework.test import APIClient

    from orders.models import Product

    first, second = Product.objects.order_by("pk").values_list("pk", flat=True)[:2]
    client = APIClient(SERVER_NAME="127.0.0.1")
    response = client.post(
        "/api/auth/token/", {"username": USERNAME, "password": PASSWORD}, format="json"
    )
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {response.json()['access']}")
    body = {
        "items": [{"product": first, "quantity": 1}, {"product": second, "quantity": 2}],
        "payment_token": "tok_visa",
    }
    counts = {}
    for name, (path, sample_rate) in ENDPOINTS.items():
        config = dict(settings.ORCHESTRATION)
        if sample_rate is not None:
            config["RUN_RECORD_SAMPLE_RATE"] = sample_rate
        with override_settings(ORCHESTRATION=config), tempfile.TemporaryDirectory() as directory:
            warm = client.post(path, body, format="json")  # content types, caches, connections
            assert warm.status_code == 201, warm.content
            with traced(Path(directory)) as files:
                # The test client leaves out what a server does around each request:
                # closing obsolete connections and, at the first query, the health check.
                close_old_connections()
                response = client.post(path, body, format="json")
                close_old_connections()
            assert response.status_code == 201, response.content
            per_connection = {name: statements_of(file.read_text()) for name, file in files.items()}
        counts[name] = {"path": path, **tally(per_connection)}
    print("STATEMENTS_RESULT " + json.dumps(counts))


def measure(env: Mapping[str, str]) -> dict[str, Any]:
    """``main()`` in a ``manage.py shell`` with ``env``: endpoint -> counts."""
    output = manage(env, "shell", "-c", "from tests.bench.statements import main; main()")
    line = next(line for line in output.splitlines() if line.startswith("STATEMENTS_RESULT "))
    return json.loads(line.removeprefix("STATEMENTS_RESULT "))


COLUMNS = (
    ("round trips", "round_trips"),
    ("data statements", "data_statements"),
    ("savepoints", "savepoints"),
    ("transactions", "transactions"),
    ("commits", "commits"),
)


def table(counts: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """A markdown table, one row per endpoint; the journal's share of the round trips apart."""
    titles = " | ".join(title for title, _ in COLUMNS)
    lines = [
        f"| endpoint | {titles} | of which on other connections |",
        "| --- |" + " ---: |" * (len(COLUMNS) + 1),
    ]
    for name, count in counts.items():
        others = sum(
            trips
            for connection, trips in count["round_trips_by_connection"].items()
            if connection != "default"
        )
        cells = " | ".join(str(count[key]) for _, key in COLUMNS)
        lines.append(f"| {name} | {cells} | {others} |")
    return lines


def listing(counts: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The statements of each endpoint in order, the connection that sent each one."""
    lines = []
    for name, count in counts.items():
        lines += ["", f"{name} (`{count['path']}`):", ""]
        lines += [
            f"{number}. [{s['connection']}] `{s['sql'][:160]}`"
            for number, s in enumerate(count["statements"], 1)
        ]
    return lines


def write(counts: Mapping[str, Mapping[str, Any]], environment: Mapping[str, Any]) -> Path:
    from tests.bench.load import write_results

    return write_results(
        "queries",
        "What one POST /api/orders/ sends to PostgreSQL",
        {"environment": dict(environment), "per_request": dict(counts)},
        [f"Environment: {json.dumps(dict(environment))}", "", *table(counts), *listing(counts)],
    )
