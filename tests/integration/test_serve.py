"""`make serve` as deployed: nginx in front of gunicorn on a unix socket, DEBUG off.

Slow clients, static files, chunked and oversized bodies, spoofed addresses and
throttle counts shared by every worker, against the real processes.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import (
    RunningServer,
    app_env,
    http_request,
    manage,
    running_gunicorn,
    running_serve,
)

pytestmark = pytest.mark.integration

WORKERS = 3
TOKEN_RATE = 20  # the default TOKEN_THROTTLE_RATE, per minute


@pytest.fixture(scope="module")
def served(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        reason = "nginx is not installed; `make system-deps` installs Debian's `nginx` package"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (required in CI)")
        pytest.skip(reason)
    log_dir = tmp_path_factory.mktemp("serve")
    env = app_env(database_url=database_url, TOKEN_THROTTLE_RATE=f"{TOKEN_RATE}/min")
    with running_serve(env, WORKERS, static_root=log_dir / "static", log_dir=log_dir) as server:
        yield server


class Trickler(threading.Thread):
    """A client that sends a request's header lines one at a time, ``interval`` apart."""

    def __init__(self, port: int, lines: int, interval: float) -> None:
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.lines, self.interval = lines, interval
        self.sent = 0

    def run(self) -> None:
        try:
            self.sock.sendall(b"GET /health/ HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            for number in range(self.lines):
                time.sleep(self.interval)
                self.sock.sendall(f"X-Slow-{number}: x\r\n".encode())
                self.sent += 1
        except OSError:
            pass  # the server may drop a client this slow: that is its right

    def close(self) -> None:
        self.sock.close()


def health_latencies(url: str, count: int, timeout: float) -> list[float]:
    """Milliseconds of ``count`` health checks, each failing the test past ``timeout``."""
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        status, _, _ = http_request(f"{url}/health/", timeout=timeout)
        latencies.append((time.perf_counter() - started) * 1000)
        assert status == 200
        time.sleep(0.05)
    return latencies


def trickle_while_checking_health(server: RunningServer, clients: int) -> list[float]:
    tricklers = [Trickler(server.port, lines=16, interval=0.5) for _ in range(clients)]
    for trickler in tricklers:
        trickler.start()
    try:
        time.sleep(1.0)  # every trickler is mid-headers
        latencies = health_latencies(server.url, count=40, timeout=5)
        still_trickling = sum(trickler.is_alive() for trickler in tricklers)
    finally:
        for trickler in tricklers:
            trickler.close()
    assert still_trickling == clients, "the slow clients finished before the health checks"
    return latencies


def test_slow_clients_do_not_hold_up_the_health_check(served: RunningServer) -> None:
    """More trickling clients than gunicorn has workers: nginx holds them, not gunicorn."""
    latencies = trickle_while_checking_health(served, clients=WORKERS + 1)
    print(
        f"\n/health/ through nginx with {WORKERS + 1} trickling clients and {WORKERS} workers: "
        f"median {statistics.median(latencies):.1f} ms, max {max(latencies):.1f} ms "
        f"over {len(latencies)} checks"
    )


def test_without_nginx_a_trickling_client_holds_a_worker(database_url: str, tmp_path: Path) -> None:
    """Why nginx is in front: gunicorn's one sync worker waits for the slow client's headers."""
    env = app_env(database_url=database_url)
    with running_gunicorn(env, workers=1, log_dir=tmp_path) as server:
        trickler = Trickler(server.port, lines=8, interval=0.5)
        trickler.start()
        time.sleep(0.5)
        try:
            with pytest.raises(TimeoutError):
                http_request(f"{server.url}/health/", timeout=1.5)
        finally:
            trickler.close()
            trickler.join(timeout=10)
        # And straight to gunicorn a chunked body (no Content-Length) is refused, not lost.
        status, body = post_chunked(server.port, "/api/auth/token/verify/", {"token": "x"})
    assert status == 411
    assert body["error"]["code"] == "length_required"


def post_chunked(port: int, path: str, payload: object) -> tuple[int, dict[str, object]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    data = json.dumps(payload).encode()
    chunks = iter([data[:5], data[5:]])
    connection.request(
        "POST",
        path,
        body=chunks,
        headers={"Content-Type": "application/json"},
        encode_chunked=True,
    )
    response = connection.getresponse()
    result = response.status, json.loads(response.read())
    connection.close()
    return result


def test_a_chunked_body_is_read_behind_nginx(served: RunningServer) -> None:
    status, body = post_chunked(served.port, "/api/auth/token/verify/", {"token": "not-a-jwt"})
    # Read as empty, the body would be a 400 "This field is required".
    assert (status, body["error"]["code"]) == (401, "token_not_valid")


def test_a_body_over_the_proxy_limit_is_a_413_in_the_error_shape(served: RunningServer) -> None:
    status, _, raw = http_request(
        f"{served.url}/api/auth/token/verify/", json_body={"token": "x" * 2_000_000}
    )
    assert status == 413
    assert json.loads(raw)["error"]["code"] == "payload_too_large"


STATIC_LINK = re.compile(r"/static/[\w/.-]+\.[0-9a-f]{12}\.(?:css|js)")


@pytest.mark.parametrize("page", ["/admin/login/", "/documentation/"])
def test_static_files_have_hashed_names_cached_for_a_year(served: RunningServer, page: str) -> None:
    status, _, html = http_request(f"{served.url}{page}")
    links = sorted(set(STATIC_LINK.findall(html.decode())))
    assert status == 200
    assert links, f"{page} links no static file with a hashed name"
    for link in links:
        status, headers, _ = http_request(f"{served.url}{link}")
        assert status == 200, link
        assert "immutable" in headers["Cache-Control"]
        assert "max-age=31536000" in headers["Cache-Control"]


def test_edges_answer_in_the_api_shape_through_nginx(served: RunningServer) -> None:
    status, headers, _ = http_request(f"{served.url}/api/orders", method="POST", json_body={})
    assert (status, headers["Location"]) == (308, "/api/orders/")
    status, _, raw = http_request(f"{served.url}/api/products/", headers={"Host": "evil.example"})
    assert (status, json.loads(raw)["error"]["code"]) == (400, "disallowed_host")


def test_throttle_counts_are_shared_by_the_workers_and_not_dodged_by_forwarded_for(
    served: RunningServer, database_url: str
) -> None:
    """One client guessing passwords, claiming a new address each time, across workers."""
    # Other tests on this database may have asked for a token within the minute.
    clear_cache = "from django.core.cache import cache; cache.clear()"
    manage(app_env(database_url=database_url), "shell", "--command", clear_cache)
    statuses = [
        http_request(
            f"{served.url}/api/auth/token/",
            method="POST",
            json_body={"username": f"nobody-{n}", "password": "guess"},
            headers={"X-Forwarded-For": f"10.9.{n}.{n}"},
        )[0]
        for n in range(TOKEN_RATE + 10)
    ]
    assert statuses == [401] * TOKEN_RATE + [429] * 10
