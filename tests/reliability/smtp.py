"""A real SMTP server on loopback (aiosmtpd) that records the order emails it accepts."""

from __future__ import annotations

import asyncio
import re
import threading
from collections import Counter
from typing import Any

from aiosmtpd.controller import Controller


class Mailbox:
    """Records ``Order #N confirmed`` (and every subject) it accepts, until stopped.

    ``stall`` seconds: each message waits that long before the server answers
    its DATA. A message whose client hung up meanwhile is not accepted (as a
    server that commits a message only when it acknowledges it), so a sender
    killed mid-send has sent nothing. ``stalled`` is set while a message waits.
    """

    SUBJECT = re.compile(r"^Subject: (.*)$", re.MULTILINE)
    CONFIRMED = re.compile(r"^Order #(\d+) confirmed$")

    def __init__(self, port: int, *, stall: float = 0.0) -> None:
        self.port = port
        self.stall = stall
        self.subjects: list[str] = []
        self.message_ids: list[str] = []
        self.stalled = threading.Event()
        self.controller = Controller(self, hostname="127.0.0.1", port=port)
        self._running = False
        self._lock = threading.Lock()  # guards what handle_DATA records
        self._state = threading.Lock()  # guards starting and stopping

    def order_ids(self) -> list[int]:
        with self._lock:
            return [
                int(found.group(1))
                for subject in self.subjects
                if (found := self.CONFIRMED.match(subject))
            ]

    def confirmations(self) -> Counter[int]:
        return Counter(self.order_ids())

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if self.stall:
            self.stalled.set()
            await asyncio.sleep(self.stall)
            if server.transport is None or server.transport.is_closing():
                return "421 The sender went away before the message was accepted"
        content = envelope.content.decode("utf-8", "replace").replace("\r\n", "\n")
        with self._lock:
            self.subjects.extend(self.SUBJECT.findall(content))
            self.message_ids.extend(re.findall(r"^Message-ID: (.*)$", content, re.MULTILINE))
        return "250 Message accepted for delivery"

    def start(self) -> None:
        with self._state:
            if not self._running:
                self.controller.start()
                self._running = True

    def stop(self) -> None:
        """Take the server down (idempotent): later connections are refused."""
        with self._state:
            if self._running:
                self._running = False
                self.controller.stop()

    def restart(self) -> None:
        """Serve again on the same port (after ``stop``)."""
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.start()
