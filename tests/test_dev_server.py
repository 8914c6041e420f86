"""`make run` as a newcomer starts it: on the port asked for, with a readable log.

Each 4xx/5xx is logged once (by ``django.request``, with the request id of the
response), and the autoreloader's "Watching for file changes" once.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import ROOT, _process, free_port, http_request

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    directory = tmp_path_factory.mktemp("make-run")
    port = free_port()
    env = {
        k: v for k, v in os.environ.items() if k not in ("DJANGO_DEBUG", "DJANGO_SETTINGS_MODULE")
    }
    env.update(DATABASE_URL=f"sqlite:///{directory / 'dev.sqlite3'}", PYTHONUNBUFFERED="1")
    url = f"http://127.0.0.1:{port}"
    # -o: the running suite proves the environment is installed; never reinstall it here.
    command = [
        "make",
        "--no-print-directory",
        "-o",
        ".venv/.installed",
        "-C",
        str(ROOT),
        "run",
        f"PORT={port}",
    ]
    with _process(command, env=env, ready_url=f"{url}/health/", timeout=180, log_dir=directory) as (
        _,
        log_path,
    ):
        yield url, log_path


def log_lines(log_path: Path, needle: str) -> list[str]:
    return [line for line in log_path.read_text(errors="replace").splitlines() if needle in line]


def test_make_run_serves_on_the_port_given(dev_server):
    url, log_path = dev_server

    status, _, body = http_request(f"{url}/health/")

    assert status == 200
    assert body == b'{"status": "ok"}'
    assert log_lines(log_path, f"runserver 127.0.0.1:{url.rsplit(':', 1)[1]}")


def test_an_error_response_is_logged_once_with_its_request_id(dev_server):
    url, log_path = dev_server

    missing_status, missing_headers, _ = http_request(f"{url}/api/no-such-endpoint/")
    anonymous_status, anonymous_headers, _ = http_request(f"{url}/api/orders/")
    http_request(f"{url}/health/")  # runserver writes a request's line after answering it

    assert (missing_status, anonymous_status) == (404, 401)
    [missing] = log_lines(log_path, "/api/no-such-endpoint/")
    assert f"[{missing_headers['X-Request-ID']}] django.request: Not Found" in missing
    [anonymous] = log_lines(log_path, "/api/orders/")
    assert f"[{anonymous_headers['X-Request-ID']}] django.request: Unauthorized" in anonymous


def test_the_autoreloader_announces_itself_once(dev_server):
    _, log_path = dev_server

    assert len(log_lines(log_path, "Watching for file changes")) == 1
