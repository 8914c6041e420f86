"""Errors nginx generates itself answer in the API's envelope under /api/, HTML elsewhere.

Raw requests through `make serve`'s stack (nginx in front of gunicorn), DEBUG off.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import pytest

from config.serve import EDGE_ERRORS, render_nginx_conf
from tests.servers import RunningServer, app_env, free_port, running_serve

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def served(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        reason = "nginx is not installed; `make system-deps` installs Debian's `nginx` package"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (required in CI)")
        pytest.skip(reason)
    log_dir = tmp_path_factory.mktemp("edge")
    env = app_env(database_url=database_url, NGINX_BODY_TIMEOUT="2")
    with running_serve(env, 1, static_root=log_dir / "static", log_dir=log_dir) as server:
        yield server


def raw(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``request`` as is; the status, headers and body of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


def request(method: str, path: str, *headers: bytes, body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: 127.0.0.1", b"Connection: close"]
    return b"\r\n".join([*lines, *headers, b"", b""]) + body


MALFORMED = {
    "a NUL in a header": (request("GET", "{path}", b"X-Evil: a\x00b"), 400, "malformed_request"),
    "a NUL in the request line": (request("GET", "{path}\x00"), 400, "malformed_request"),
    "Content-Length -1": (
        request("POST", "{path}", b"Content-Length: -1"),
        400,
        "malformed_request",
    ),
    "a 9 KB header": (
        request("GET", "{path}", b"X-Big: " + b"a" * 9000),
        431,
        "headers_too_large",
    ),
    "TRACE": (request("TRACE", "{path}"), 405, "method_not_allowed"),
    "HTTP/2.0 in plain text": (
        b"GET {path} HTTP/2.0\r\nHost: 127.0.0.1\r\n\r\n",
        505,
        "http_version_not_supported",
    ),
    "a 9 KB URI": (request("GET", "{path}?q=" + "a" * 9000), 414, "uri_too_long"),
    "a body over the limit": (
        request("POST", "{path}", b"Content-Length: 2000000", b"Content-Type: application/json"),
        413,
        "payload_too_large",
    ),
    "an unknown transfer coding": (
        request("POST", "{path}", b"Transfer-Encoding: gzip, chunked"),
        501,
        "not_implemented",
    ),
}


@pytest.mark.parametrize("kind", MALFORMED)
def test_under_api_the_error_is_the_envelope(served: RunningServer, kind: str) -> None:
    template, status, code = MALFORMED[kind]
    answered, headers, body = raw(served.port, template.replace(b"{path}", b"/api/products/"))
    assert answered == status, body[:300]
    assert headers["content-type"] == "application/json"
    envelope = json.loads(body)
    assert envelope["success"] is False
    assert envelope["error"] == {
        "step": None,
        "code": code,
        "message": envelope["error"]["message"],
        "details": {},
    }
    assert envelope["error"]["message"].endswith(".")
    assert envelope["request_id"]


@pytest.mark.parametrize("kind", ["a NUL in a header", "TRACE", "a 9 KB header", "a 9 KB URI"])
def test_outside_api_nginx_keeps_its_page(served: RunningServer, kind: str) -> None:
    template, _, _ = MALFORMED[kind]
    answered, headers, body = raw(served.port, template.replace(b"{path}", b"/health/"))
    assert 400 <= answered < 500
    assert headers["content-type"].startswith("text/html")
    assert b"<html>" in body


def test_every_edge_code_is_distinct_per_status() -> None:
    codes = {(error.status, error.code) for error in EDGE_ERRORS}
    assert len({code for _, code in codes}) == len(codes)


def test_more_headers_than_gunicorn_allows_by_default_reach_the_app(
    served: RunningServer,
) -> None:
    # 200 headers, 22 KB: within nginx's limits; gunicorn's default of 100 refuses them.
    headers = [f"X-Header-{n}: {'v' * 100}".encode() for n in range(200)]
    status, content_type, _ = raw(served.port, request("GET", "/api/products/", *headers))
    assert (status, content_type["content-type"]) == (200, "application/json")


def test_a_long_uri_that_nginx_passes_reaches_the_app(served: RunningServer) -> None:
    path = "/api/products/?search=" + "a" * 6000  # over gunicorn's default 4094 bytes
    status, headers, _ = raw(served.port, request("GET", path))
    assert (status, headers["content-type"]) == (200, "application/json")


def test_a_body_that_stops_is_dropped_without_an_html_page(served: RunningServer) -> None:
    """nginx logs a 408 after the body timeout but sends nothing: no HTML reaches the client."""
    stalled = request("POST", "/api/products/", b"Content-Length: 100", body=b'{"a":')
    with socket.create_connection(("127.0.0.1", served.port), timeout=15) as sock:
        sock.sendall(stalled)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    assert received == b"" or json.loads(received.partition(b"\r\n\r\n")[2])


@pytest.fixture
def nginx_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[int, Path]]:
    """nginx with the rendered configuration, in front of a socket the test controls."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        pytest.skip("nginx is not installed; `make system-deps` installs it")
    port = free_port()
    monkeypatch.setenv("PORT", str(port))
    monkeypatch.setenv("GUNICORN_TIMEOUT", "1")  # nginx waits 6 s for the app
    upstream = tmp_path / "app.sock"
    conf = tmp_path / "nginx.conf"
    conf.write_text(render_nginx_conf(run_dir=tmp_path, socket=upstream, static_root=tmp_path))
    process = subprocess.Popen(
        [nginx, "-p", str(tmp_path), "-c", str(conf), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            time.sleep(0.05)
        yield port, upstream
    finally:
        os.killpg(process.pid, signal.SIGQUIT)
        process.wait(timeout=10)


def test_a_dead_app_is_a_502_envelope(nginx_alone: tuple[int, Path]) -> None:
    port, _ = nginx_alone  # nothing listens on the app's socket
    status, headers, body = raw(port, request("GET", "/api/products/"))
    assert (status, headers["content-type"]) == (502, "application/json")
    assert json.loads(body)["error"]["code"] == "upstream_unavailable"
    status, headers, _ = raw(port, request("GET", "/health/"))
    assert status == 502
    assert headers["content-type"].startswith("text/html")


def test_an_app_that_never_answers_is_a_504_envelope(nginx_alone: tuple[int, Path]) -> None:
    port, upstream = nginx_alone
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(upstream))
        listener.listen(8)  # accepted by the kernel, never answered
        status, headers, body = raw(port, request("GET", "/api/products/"))
    assert (status, headers["content-type"]) == (504, "application/json")
    assert json.loads(body)["error"]["code"] == "upstream_timeout"
