"""`make run` as a newcomer starts it: on the port asked for, with a readable log, and the
walkthrough of docs/example-project.md run against it as written.

Each 4xx/5xx is logged once (by ``django.request``, with the request id of the
response), and the autoreloader's "Watching for file changes" once.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
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
    assert log_lines(log_path, f"Starting development server at {url}/")


def test_an_error_response_is_logged_once_with_its_request_id(dev_server):
    url, log_path = dev_server

    missing_status, missing_headers, _ = http_request(f"{url}/api/no-such-endpoint/")
    anonymous_status, anonymous_headers, _ = http_request(f"{url}/api/orders/424242/")
    http_request(f"{url}/health/")  # runserver writes a request's line after answering it

    assert (missing_status, anonymous_status) == (404, 401)
    [missing] = log_lines(log_path, "/api/no-such-endpoint/")
    assert f"[{missing_headers['X-Request-ID']} " in missing
    assert "django.request: Not Found" in missing
    [anonymous] = log_lines(log_path, "/api/orders/424242/")
    assert f"[{anonymous_headers['X-Request-ID']} " in anonymous
    assert "django.request: Unauthorized" in anonymous


def test_the_autoreloader_announces_itself_once(dev_server):
    _, log_path = dev_server

    assert len(log_lines(log_path, "Watching for file changes")) == 1


def walkthrough_script(url: str) -> str:
    """The walkthrough's shell blocks, on this server, with a marker before each step."""
    page = (ROOT / "docs" / "example-project.md").read_text()
    section = page.split("<!-- section: walkthrough -->")[1].split("<!-- /section")[0]
    script = "\n".join(re.findall(r"```sh\n(.*?)```", section, flags=re.S))
    assert "BASE=http://127.0.0.1:8000\n" in script
    script = script.replace("BASE=http://127.0.0.1:8000\n", f"BASE={url}\n")
    return re.sub(r"^# (\d+)\. ", r"printf '\\n=== step \1\\n'\n# \1. ", script, flags=re.M)


def test_the_walkthrough_runs_as_written(dev_server):
    if shutil.which("curl") is None:
        if os.environ.get("CI"):
            pytest.fail("CI needs curl: `make system-deps` installs it")
        pytest.skip("curl is not installed (`make system-deps` installs it)")
    url, _ = dev_server

    completed = subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + walkthrough_script(url)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip

    assert completed.returncode == 0, completed.stderr
    steps = dict(
        re.findall(r"^=== step (\d+)\n(.*?)(?=^=== step |\Z)", completed.stdout, re.M | re.S)
    )
    assert set(steps) == {str(number) for number in range(1, 10)}
    assert '"sku"' in steps["2"]
    assert "HTTP/1.1 201" in steps["3"]
    assert "Server-Timing: total;dur=" in steps["3"]
    assert '"status":"paid"' in steps["3"]
    assert "Idempotent-Replayed: true" in steps["4"]
    assert '"code":"payment_declined"' in steps["5"]
    assert '"code":"payment_gateway_unavailable"' in steps["6"]
    assert '"code":"out_of_stock"' in steps["7"]
    assert '"code":"validation_failed"' in steps["8"]
    assert '"total":["This value is computed by the server' in steps["8"]
    assert '"count": 1' in steps["9"]
    assert '"status": "cancelled"' in steps["9"]
