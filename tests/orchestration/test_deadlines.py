"""Deadlines on waits that per-read timeouts and server-side timeouts cannot enforce."""

from __future__ import annotations

import smtplib
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from django.contrib.auth.models import Group
from django.core.mail import EmailMessage
from django.db import connection

from orchestration import Step
from orchestration.deadlines import socket_deadline
from orchestration.mail import EmailBackend
from tests.orchestration.pipelines import create_group, make_orchestrator

postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="statement_timeout is PostgreSQL's"
)


def test_a_socket_deadline_ends_a_read_that_would_wait_for_ever():
    ours, theirs = socket.socketpair()
    with ours, theirs:
        started = time.monotonic()
        with socket_deadline(ours.fileno(), 0.2):
            assert ours.recv(10) == b""  # shut down: the read returns, it does not hang
        assert time.monotonic() - started < 30


def test_a_released_deadline_leaves_the_socket_alone():
    ours, theirs = socket.socketpair()
    with ours, theirs:
        with socket_deadline(ours.fileno(), 0.1):
            pass
        time.sleep(0.3)
        theirs.sendall(b"still open")
        assert ours.recv(10) == b"still open"


@pytest.fixture
def drip_feeding_smtp_server() -> Iterator[int]:
    """A server that sends its greeting one byte every 0.1 s, for ever (until closed)."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            with client:
                greeting = b"220 slow.example ESMTP " + b"." * 10_000
                for byte in greeting:
                    if stop.is_set():
                        break
                    try:
                        client.sendall(bytes([byte]))
                    except OSError:
                        break
                    time.sleep(0.1)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def test_the_smtp_backend_gives_up_at_its_overall_deadline(drip_feeding_smtp_server, settings):
    # Each byte arrives well within the 1 s per-read timeout: only an overall deadline ends it.
    # A mailer of its own (an alias: Django 6.1 warns about a backend made without one).
    backend = EmailBackend(
        alias="deadline", host="127.0.0.1", port=drip_feeding_smtp_server, timeout=1.0
    )
    message = EmailMessage("s", "b", "from@example.com", ["to@example.com"])

    started = time.monotonic()
    with pytest.raises((smtplib.SMTPException, OSError)):
        backend.send_messages([message])
    assert time.monotonic() - started < 30  # the greeting alone would take 1000 s


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_step_budget_bounds_its_queries_and_only_its_own():
    def slow_query(ctx):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(3)")
        return ctx

    def later_query(ctx):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(0.3), current_setting('statement_timeout')")
            ctx.trail.append(cursor.fetchone()[1])
        return ctx

    orchestrator = make_orchestrator(
        "BudgetedQueries",
        [
            Step("create", create_group("kept")),
            Step("slow", slow_query, critical=False, timeout=0.2),
            Step("later", later_query),
        ],
    )

    result = orchestrator().execute([])

    assert result.success
    assert result.step("slow").status == "timed_out"
    assert result.step("slow").error.code == "timeout"
    assert result.step("later").status == "ok"
    assert result.data == ["kept", "5s"]  # the configured default is back after the step
    assert list(Group.objects.values_list("name", flat=True)) == ["kept"]
