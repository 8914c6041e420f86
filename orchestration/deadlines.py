"""Deadlines on blocking I/O that per-read timeouts cannot enforce.

A per-read socket timeout restarts with every byte, so a peer that drip-feeds
its answer, or a database server that is stopped while its kernel still
acknowledges packets, holds a caller for ever. ``socket_deadline`` shuts the
socket down when an overall deadline passes: the blocked read returns at once
and the client library raises its own connection error, which callers already
handle. One watchdog thread per process serves every deadline.

A step's own statement budget (``statement_timeout``) is set by
``orchestration.scope``, at the step's first query.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

logger = logging.getLogger("orchestration")


class _Watchdog:
    """Shuts down the sockets whose deadline passed before they were released."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._heap: list[tuple[float, int]] = []
        self._armed: dict[int, int] = {}  # token -> file descriptor
        self._tokens = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, fileno: int, deadline: float) -> int:
        with self._lock:
            token = next(self._tokens)
            self._armed[token] = fileno
            heapq.heappush(self._heap, (deadline, token))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._watch, name="io-deadline-watchdog", daemon=True
                )
                self._thread.start()
            elif self._heap[0][1] == token:
                self._lock.notify()
            return token

    def disarm(self, token: int) -> bool:
        """Release a deadline; False when it had already fired."""
        with self._lock:
            return self._armed.pop(token, None) is not None

    def _watch(self) -> None:
        with self._lock:
            while True:
                while self._heap and self._heap[0][1] not in self._armed:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._lock.wait()
                    continue
                deadline, token = self._heap[0]
                wait = deadline - time.monotonic()
                if wait > 0:
                    self._lock.wait(wait)
                    continue
                heapq.heappop(self._heap)
                fileno = self._armed.pop(token)
                # Under the lock: the owner cannot close (and the OS reuse) the
                # descriptor while it is still armed.
                _shutdown(fileno)


def _shutdown(fileno: int) -> None:
    try:
        sock = socket.socket(fileno=fileno)
    except OSError:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        sock.detach()  # the descriptor belongs to its owner, who closes it


_watchdog = _Watchdog()


@contextmanager
def socket_deadline(fileno: int, seconds: float) -> Iterator[None]:
    """Shut the socket ``fileno`` down if the block is still running after ``seconds``.

    The blocked call then fails the way a dropped connection does (psycopg's
    ``OperationalError``, smtplib's ``SMTPServerDisconnected``).
    """
    token = _watchdog.arm(fileno, time.monotonic() + seconds)
    try:
        yield
    finally:
        _watchdog.disarm(token)


def arm(fileno: int, seconds: float) -> int:
    """Start a deadline that outlives one block (``release`` it); returns its token."""
    return _watchdog.arm(fileno, time.monotonic() + seconds)


def release(token: int) -> bool:
    """End a deadline started by ``arm``; False when it had already fired."""
    return _watchdog.disarm(token)
