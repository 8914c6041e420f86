# ruff: noqa: N999 - gunicorn reads this file by its conventional name
"""Gunicorn settings for production-like serving (``make serve``).

Several worker processes share one set of Prometheus metrics through
prometheus_client's multiprocess mode: every worker writes its samples to
files in ``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` (served by any worker)
sums them. So that counts start from zero and a dead worker's in-progress
gauge disappears, the directory is emptied when the server starts and a
worker's live files are removed when it exits.

Environment: ``PROMETHEUS_MULTIPROC_DIR`` (required; ``make serve`` sets one
under ``var/``), ``WEB_CONCURRENCY`` (workers, default ``2 * cores + 1``),
``GUNICORN_THREADS`` (threads per worker, default 1), ``GUNICORN_BIND``
(default ``127.0.0.1:8000``), ``GUNICORN_TIMEOUT`` (seconds, default 30).
``GUNICORN_CMD_ARGS`` and command-line flags override all of these.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
from pathlib import Path
from typing import Any

from prometheus_client import multiprocess

_multiproc_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
if not _multiproc_dir:
    raise RuntimeError(
        "PROMETHEUS_MULTIPROC_DIR must be set: the workers share their Prometheus metrics "
        "through files in that directory (`make serve` sets one under var/)."
    )

wsgi_app = "config.wsgi:application"
bind = [os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")]
workers = int(os.environ.get("WEB_CONCURRENCY", 2 * multiprocessing.cpu_count() + 1))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 20
# The app is imported in each worker, after on_starting has emptied the
# metrics directory, never in the master: a metric created before the fork
# would be shared by every worker.
preload_app = False
accesslog = "-"
errorlog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


def on_starting(server: Any) -> None:
    """Start from empty metrics: remove the files a previous run left."""
    directory = Path(_multiproc_dir)
    directory.mkdir(parents=True, exist_ok=True)
    # Only prometheus_client's own files, in case the variable names a shared directory.
    for stale in directory.glob("*.db"):
        stale.unlink()


#: prctl(2) option: the signal a process gets when its parent dies (Linux).
_PR_SET_PDEATHSIG = 1


def post_fork(server: Any, worker: Any) -> None:
    """A worker stops as soon as its master dies, even by SIGKILL.

    Otherwise an orphaned worker keeps serving the inherited listening socket until
    its next check of its parent (up to half the timeout, longer mid-request), and a
    master started again in the meantime cannot bind the address. SIGTERM lets the
    request in hand finish. Elsewhere than Linux, gunicorn's own parent check remains.
    """
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        server.log.warning("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
    elif os.getppid() != worker.ppid:  # the master died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def child_exit(server: Any, worker: Any) -> None:
    """Drop the exited worker's live gauges (in-progress runs) from the sums."""
    multiprocess.mark_process_dead(worker.pid)
