"""Real servers for cross-app tests: the app under gunicorn, and Prometheus.

Everything listens on a free loopback port. Each server runs in a process
group of its own, and only that group is stopped. The app runs
production-like (``DJANGO_DEBUG`` off) on a database of its own that the
caller migrates: an SQLite file, or a PostgreSQL database named
``<name>_it`` next to the one ``DATABASE_URL`` names.

``running_uvicorn`` serves the same app over ASGI.

Usage::

    env = app_env(database_url=prepare_database(tmp_path))
    manage(env, "migrate", "--no-input")
    with running_gunicorn(env, workers=2) as server:
        status, _, body = http_request(f"{server.url}/health/")
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
POSTGRES_SCHEMES = ("postgres", "postgresql", "pgsql")

#: Variables that make a development or test process differ from production.
_DEVELOPMENT_VARIABLES = ("DJANGO_DEBUG", "DJANGO_SETTINGS_MODULE", "PROMETHEUS_MULTIPROC_DIR")


def free_port() -> int:
    """A loopback TCP port that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def app_env(*, database_url: str, **overrides: str) -> dict[str, str]:
    """A production-like environment for the app: debug off, plain HTTP on loopback."""
    env = {key: value for key, value in os.environ.items() if key not in _DEVELOPMENT_VARIABLES}
    env.update(
        DJANGO_SECRET_KEY="integration-test-secret-key-not-for-production-use-0123456789",
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        DJANGO_SECURE_SSL_REDIRECT="0",
        DATABASE_URL=database_url,
        EMAIL_URL="consolemail://",
        PYTHONUNBUFFERED="1",
    )
    env.update(overrides)
    return env


def prepare_database(directory: Path, *, suffix: str = "it") -> str:
    """An empty database for a server and its URL.

    With ``DATABASE_URL`` on PostgreSQL: that server's database
    ``<name>_<suffix>``, dropped and created again. Otherwise an SQLite file in
    ``directory``.
    """
    url = os.environ.get("DATABASE_URL", "")
    parts = urlsplit(url)
    if parts.scheme not in POSTGRES_SCHEMES:
        return f"sqlite:///{directory / f'{suffix}.sqlite3'}"
    name = f"{parts.path.lstrip('/') or 'postgres'}_{suffix}"
    _postgres_admin(
        url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"'
    )
    return urlunsplit(parts._replace(path=f"/{name}"))


def drop_database(url: str) -> None:
    """Drop a PostgreSQL database made by ``prepare_database``; an SQLite file stays."""
    parts = urlsplit(url)
    if parts.scheme in POSTGRES_SCHEMES:
        _postgres_admin(url, f'DROP DATABASE IF EXISTS "{parts.path.lstrip("/")}" WITH (FORCE)')


def _postgres_admin(url: str, *statements: str) -> None:
    import psycopg

    parts = urlsplit(url)
    admin = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as connection:
        for statement in statements:
            connection.execute(statement)


def manage(env: Mapping[str, str], *args: str, timeout: float = 180) -> str:
    """Run ``manage.py`` with ``env``; its output, or an AssertionError that shows it."""
    completed = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if completed.returncode != 0:
        raise AssertionError(
            f"manage.py {' '.join(args)} exited with {completed.returncode}:\n"
            f"{completed.stdout}\n{completed.stderr}"
        )
    return completed.stdout


def http_request(
    url: str,
    *,
    method: str = "GET",
    json_body: Any = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 30,
) -> tuple[int, Mapping[str, str], bytes]:
    """One HTTP request: status, headers and body, error statuses included."""
    data = None if json_body is None else json.dumps(json_body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


@dataclass(frozen=True)
class RunningServer:
    url: str
    port: int
    pid: int
    log_path: Path

    def log(self) -> str:
        """What the server printed so far (stdout and stderr)."""
        return self.log_path.read_text(errors="replace")


def _wait_until_ready(
    process: subprocess.Popen[bytes], url: str, log_path: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"{process.args[0]} exited with {process.returncode} before {url} answered:\n"
                f"{log_path.read_text(errors='replace')[-4000:]}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    output = log_path.read_text(errors="replace")[-4000:]
    raise RuntimeError(f"{url} did not answer within {timeout:g} s:\n{output}")


def _stop(process: subprocess.Popen[bytes], grace: float = 15) -> None:
    """Stop the process group this module started, and nothing else."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    else:
        # The leader exited; make sure no child of its group is left behind.
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


@contextmanager
def _process(
    command: Sequence[str], *, env: Mapping[str, str], ready_url: str, timeout: float, log_dir: Path
) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    log_path = log_dir / f"{Path(command[0]).name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_until_ready(process, ready_url, log_path, timeout)
        yield process, log_path
    finally:
        _stop(process)


@contextmanager
def running_gunicorn(
    env: Mapping[str, str],
    workers: int = 2,
    *,
    extra_args: Sequence[str] = (),
    log_dir: Path | None = None,
    timeout: float = 60,
) -> Iterator[RunningServer]:
    """The app under gunicorn (``config/gunicorn.conf.py``), ready when ``/health/`` answers.

    ``env`` comes from ``app_env``; unless it names a ``PROMETHEUS_MULTIPROC_DIR``
    the server gets a temporary one, removed afterwards.
    """
    with ExitStack() as stack:
        env = dict(env)
        if log_dir is None:
            log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gunicorn-")))
        if not env.get("PROMETHEUS_MULTIPROC_DIR"):
            env["PROMETHEUS_MULTIPROC_DIR"] = str(log_dir / "prometheus-multiproc")
        port = free_port()
        command = [
            str(BIN / "gunicorn"),
            "--config",
            "config/gunicorn.conf.py",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            *extra_args,
        ]
        url = f"http://127.0.0.1:{port}"
        process, log_path = stack.enter_context(
            _process(command, env=env, ready_url=f"{url}/health/", timeout=timeout, log_dir=log_dir)
        )
        yield RunningServer(url=url, port=port, pid=process.pid, log_path=log_path)


@contextmanager
def running_uvicorn(
    env: Mapping[str, str], *, log_dir: Path, timeout: float = 60
) -> Iterator[RunningServer]:
    """The app under uvicorn (``config.asgi``), ready when ``/health/`` answers."""
    port = free_port()
    command = [
        str(BIN / "uvicorn"),
        "config.asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
    ]
    url = f"http://127.0.0.1:{port}"
    with _process(
        command, env=env, ready_url=f"{url}/health/", timeout=timeout, log_dir=log_dir
    ) as (process, log_path):
        yield RunningServer(url=url, port=port, pid=process.pid, log_path=log_path)


@contextmanager
def running_serve(
    env: Mapping[str, str],
    workers: int = 2,
    *,
    static_root: Path,
    log_dir: Path,
    timeout: float = 60,
) -> Iterator[RunningServer]:
    """``make serve`` without make: nginx on a free port in front of gunicorn on a unix
    socket (``config/serve.py``), after ``collectstatic`` into ``static_root``.

    Ready when ``/health/`` answers through nginx.
    """
    env = {
        **env,
        "STATIC_ROOT": str(static_root),
        "SERVE_DIR": str(log_dir / "serve"),
        "WEB_CONCURRENCY": str(workers),
        "PORT": str(free_port()),
        "HOST": "127.0.0.1",
    }
    env.setdefault("PROMETHEUS_MULTIPROC_DIR", str(log_dir / "prometheus-multiproc"))
    Path(env["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)
    manage(env, "collectstatic", "--no-input", "--verbosity", "0")
    url = f"http://127.0.0.1:{env['PORT']}"
    command = [sys.executable, "-m", "config.serve"]
    with _process(
        command, env=env, ready_url=f"{url}/health/", timeout=timeout, log_dir=log_dir
    ) as (process, log_path):
        yield RunningServer(url=url, port=int(env["PORT"]), pid=process.pid, log_path=log_path)


def prometheus_binary() -> str | None:
    """Path of the ``prometheus`` server, or None when it is not installed."""
    return shutil.which("prometheus")


def promtool_binary() -> str | None:
    return shutil.which("promtool")


@contextmanager
def running_prometheus(
    config: Mapping[str, Any],
    directory: Path,
    *,
    files: Mapping[str, str] | None = None,
    timeout: float = 60,
) -> Iterator[RunningServer]:
    """A Prometheus server for ``config``, with its storage in ``directory``.

    ``files`` (name -> text) are written next to the configuration, for the
    rule files it names. Ready when ``/-/ready`` answers.
    """
    binary = prometheus_binary()
    if binary is None:
        raise RuntimeError("prometheus is not installed (Debian package `prometheus`).")
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in (files or {}).items():
        (directory / name).write_text(text)
    config_path = directory / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(dict(config), sort_keys=False))
    port = free_port()
    command = [
        binary,
        f"--config.file={config_path}",
        f"--storage.tsdb.path={directory / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    url = f"http://127.0.0.1:{port}"
    with _process(
        command, env=os.environ, ready_url=f"{url}/-/ready", timeout=timeout, log_dir=directory
    ) as (process, log_path):
        yield RunningServer(url=url, port=port, pid=process.pid, log_path=log_path)
