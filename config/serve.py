"""``make serve``: nginx in front of gunicorn on a unix socket, both in the foreground.

Run after ``migrate`` and ``collectstatic``. nginx (Debian's package) buffers
clients, serves the collected static files and passes the rest to gunicorn
(``config/gunicorn.conf.py``) over a unix socket. Either process exiting stops
the other; SIGINT or SIGTERM stops both. On Linux both get SIGTERM when this
process dies, even by SIGKILL, and gunicorn's workers when their master dies: a
restart right after binds the port again. Under ``/api/`` the errors nginx answers
itself (``EDGE_ERRORS``) come in the API's error envelope.

Environment: ``PORT`` (default 8000) and ``HOST`` (default 127.0.0.1) where
nginx listens; ``SERVE_DIR`` for the socket, pid file and nginx's temporary
files (default ``var/serve``); ``NGINX_MAX_BODY_SIZE`` (default ``1m``);
``NGINX_HEADER_TIMEOUT`` and ``NGINX_BODY_TIMEOUT`` (seconds, default 10);
``NGINX_ACCESS_LOG`` (default off). Everything gunicorn reads still applies,
except ``GUNICORN_BIND``; ``TRUSTED_PROXIES`` defaults to 1 (nginx).
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from string import Template

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = Path(__file__).with_name("nginx.conf.template")


@dataclass(frozen=True)
class EdgeError:
    """An error nginx answers itself, before or instead of the app: under ``/api/`` it
    answers ``status`` in the API's error envelope (elsewhere its own HTML page)."""

    nginx_status: int  # the status nginx generates (494 is its "header too large")
    status: int
    code: str
    message: str


#: The errors the HTTP layer generates, rendered into nginx.conf and documented in
#: docs/error-codes.md. A request refused this early never reaches Django.
EDGE_ERRORS = (
    EdgeError(400, 400, code="malformed_request", message="The HTTP request is malformed."),
    EdgeError(405, 405, code="method_not_allowed", message="This HTTP method is not allowed."),
    EdgeError(408, 408, code="request_timeout", message="The request was not sent in time."),
    EdgeError(413, 413, code="payload_too_large", message="The request body is too large."),
    EdgeError(414, 414, code="uri_too_long", message="The request URI is too long."),
    EdgeError(494, 431, code="headers_too_large", message="The request headers are too large."),
    EdgeError(500, 500, code="internal_error", message="The server failed to answer."),
    EdgeError(501, 501, code="not_implemented", message="The transfer coding is not supported."),
    EdgeError(502, 502, code="upstream_unavailable", message="The application is not answering."),
    EdgeError(503, 503, code="service_unavailable", message="The service is unavailable."),
    EdgeError(504, 504, code="upstream_timeout", message="The application did not answer in time."),
    EdgeError(
        505, 505, code="http_version_not_supported", message="The HTTP version is not supported."
    ),
)


def render_error_pages(errors: tuple[EdgeError, ...] = EDGE_ERRORS) -> str:
    """nginx ``error_page`` blocks: the envelope under ``/api/``, nginx's page elsewhere.

    Internal URIs, not named locations: nginx cannot redirect a request whose URI it
    never parsed (a request line too long) to a named location, and answers 500.
    """
    blocks = []
    for error in errors:
        body = json.dumps(
            {
                "success": False,
                "error": {
                    "step": None,
                    "code": error.code,
                    "message": error.message,
                    "details": {},
                },
                "request_id": "__REQUEST_ID__",
            }
        ).replace("__REQUEST_ID__", "$request_id")
        if "'" in body:
            raise ValueError(f"{error.code}: nginx quotes the body in single quotes")
        blocks.append(
            f"error_page {error.nginx_status} = /.edge-errors/{error.nginx_status};\n"
            f"        location = /.edge-errors/{error.nginx_status} {{\n"
            f"            internal;\n"
            f"            default_type application/json;\n"
            f"            if ($api_request) {{\n"
            f"                return {error.status} '{body}';\n"
            f"            }}\n"
            f"            return {error.nginx_status};\n"
            f"        }}"
        )
    return "\n        ".join(blocks)


def render_nginx_conf(*, run_dir: Path, socket: Path, static_root: Path) -> str:
    env = os.environ
    return Template(TEMPLATE.read_text()).substitute(
        # As root, nginx's workers would run as nobody, who cannot reach the socket and
        # files of the user who started it; otherwise nginx keeps its user anyway.
        user_directive="user root;" if os.geteuid() == 0 else "",
        run_dir=run_dir,
        socket=socket,
        static_root=static_root,
        host=env.get("HOST", "127.0.0.1"),
        port=int(env.get("PORT", "8000")),
        max_body_size=env.get("NGINX_MAX_BODY_SIZE", "1m"),
        header_timeout=int(env.get("NGINX_HEADER_TIMEOUT", "10")),
        body_timeout=int(env.get("NGINX_BODY_TIMEOUT", "10")),
        app_timeout=int(env.get("GUNICORN_TIMEOUT", "30")) + 5,
        access_log=env.get("NGINX_ACCESS_LOG", "off"),
        error_pages=render_error_pages(),
    )


def static_root() -> Path:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.conf import settings

    return Path(settings.STATIC_ROOT)


_PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent dies


def _ended_with_this_process() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the child sent SIGTERM when this process dies (Linux).

    So that killing ``make serve`` with SIGKILL leaves neither nginx holding the port
    nor gunicorn running: a restart right after can bind again.
    """
    if not sys.platform.startswith("linux"):
        return None
    parent = os.getpid()

    def die_with_parent() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the request took effect
            os._exit(1)

    return die_with_parent


def main() -> int:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        print("nginx is not installed (Debian package `nginx`: make system-deps).", file=sys.stderr)
        return 1
    run_dir = Path(os.environ.get("SERVE_DIR", ROOT / "var" / "serve")).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    socket = run_dir / "gunicorn.sock"
    socket.unlink(missing_ok=True)
    conf = run_dir / "nginx.conf"
    conf.write_text(render_nginx_conf(run_dir=run_dir, socket=socket, static_root=static_root()))

    app_env = dict(os.environ, GUNICORN_BIND=f"unix:{socket}")
    app_env.setdefault("TRUSTED_PROXIES", "1")
    gunicorn = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("gunicorn")),
            *("-c", "config/gunicorn.conf.py"),
            # nginx bounds the request line (8 KiB) and the headers in all (32 KiB) and
            # answers in the API's shape: gunicorn's lower limits (a 4 KiB request line,
            # 100 headers) would refuse what nginx passed, with an HTML page.
            *("--limit-request-line", "0", "--limit-request-fields", "32768"),
        ],
        cwd=ROOT,
        env=app_env,
        preexec_fn=_ended_with_this_process(),  # single-threaded here: safe
    )
    deadline = time.monotonic() + 60
    while not socket.exists() and gunicorn.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proxy = subprocess.Popen(
        [nginx, "-p", str(run_dir), "-c", str(conf), "-g", "daemon off;"],
        cwd=ROOT,
        preexec_fn=_ended_with_this_process(),  # single-threaded here: safe
    )
    children = (gunicorn, proxy)

    def stop(signum: int, frame: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGQUIT if child is proxy else signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while all(child.poll() is None for child in children):
        time.sleep(0.2)
    stop(signal.SIGTERM, None)
    codes = [child.wait(timeout=30) for child in children]
    return next((code for code in codes if code), 0)


if __name__ == "__main__":
    sys.exit(main())
