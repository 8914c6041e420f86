"""A gunicorn master killed with SIGKILL leaves no worker behind, and a restart serves at once.

Without a parent-death signal the orphaned workers keep the inherited listening
socket open until they next check their parent, and the new master cannot bind.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path

import pytest

from tests.servers import BIN, ROOT, app_env, free_port, http_request

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's"),
]


def start_gunicorn(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as output:
        return subprocess.Popen(
            [str(BIN / "gunicorn"), "-c", "config/gunicorn.conf.py", "--bind", f"127.0.0.1:{port}"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def serves_within(url: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if http_request(url, timeout=1)[0] == 200:
                return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_restart_after_a_killed_master_serves_within_seconds(
    database_url: str, tmp_path: Path
) -> None:
    env = app_env(
        database_url=database_url,
        WEB_CONCURRENCY="3",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
    )
    port, log = free_port(), tmp_path / "gunicorn.log"
    url = f"http://127.0.0.1:{port}/health/"
    first = start_gunicorn(env, port, log)
    second = None
    try:
        assert serves_within(url, 60), log.read_text()[-3000:]
        workers = children_of(first.pid)
        assert len(workers) == 3

        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        second = start_gunicorn(env, port, log)

        assert serves_within(url, 10), log.read_text()[-3000:]
        assert second.poll() is None, "the new master gave up"
        leftover = [pid for pid in workers if alive(pid)]
        assert leftover == [], f"orphaned workers still running: {leftover}"
    finally:
        for process in (first, second):
            if process is not None:
                with suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def start_serve(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "config.serve"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


@pytest.mark.parametrize("killed", ["make serve", "its gunicorn master"])
def test_make_serve_restarts_cleanly_after_a_sigkill(
    database_url: str, tmp_path: Path, killed: str
) -> None:
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        pytest.skip("nginx is not installed; `make system-deps` installs it")
    port = free_port()
    env = app_env(
        database_url=database_url,
        WEB_CONCURRENCY="2",
        PORT=str(port),
        HOST="127.0.0.1",
        SERVE_DIR=str(tmp_path / "serve"),
        STATIC_ROOT=str(tmp_path / "static"),
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
    )
    (tmp_path / "metrics").mkdir()
    log, url = tmp_path / "serve.log", f"http://127.0.0.1:{port}/health/"
    first = start_serve(env, log)
    second = None
    try:
        assert serves_within(url, 60), log.read_text()[-3000:]
        (gunicorn,) = [pid for pid in children_of(first.pid) if b"gunicorn" in cmdline(pid)]
        started = [first.pid, *children_of(first.pid), *children_of(gunicorn)]
        os.kill(first.pid if killed == "make serve" else gunicorn, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in started) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [pid for pid in started if alive(pid)] == [], "processes outlived the kill"

        second = start_serve(env, log)
        assert serves_within(url, 30), log.read_text()[-3000:]
        assert second.poll() is None
    finally:
        for process in (first, second):
            if process is not None:
                with suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""
