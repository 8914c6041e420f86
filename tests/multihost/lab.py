"""Hosts on one machine: network namespaces on a private bridge, made and removed by the test.

``Lab`` creates one namespace per host and one for the switch. The switch
namespace holds a bridge; each host gets a veth pair whose one end (``eth0``,
with an address of ``10.231.N.0/24``) is in the host and whose other end is a
port of the bridge. Nothing is added to the machine's own network namespace,
so the addresses exist only inside these namespaces and no packet of the test
leaves them.

Processes run in a host with ``ip netns exec``; the test process itself
reaches the hosts from threads that entered the client host's namespace
(``setns(2)`` applies to the calling thread only), see ``Lab.client``.
``Lab.close`` kills every process left in the namespaces (the test started
all of them) and deletes the namespaces, which removes their links.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from http.client import HTTPConnection, HTTPException
from pathlib import Path
from typing import Any, TypeVar

from tests.servers import ROOT

T = TypeVar("T")

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def can_make_namespaces() -> str | None:
    """None when this process can build the lab; otherwise why not."""
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    if shutil.which("ip") is None:
        return "needs `ip` (Debian package iproute2)"
    return None


def enter_namespace(name: str) -> None:
    """Move the calling thread into network namespace ``name`` (``/run/netns/name``)."""
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns into {name}: {os.strerror(errno)}")
    finally:
        os.close(fd)


def run_in_namespace(name: str, function: Callable[[], T]) -> T:
    """``function()`` in a new thread inside namespace ``name``; threads and sockets it
    creates stay there."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            enter_namespace(name)
            outcome["value"] = function()
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=target, name=f"netns-{name}")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


class Response:
    def __init__(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"<{self.status} {self.body[:300]!r}>"


class Client:
    """HTTP (and SQL) from threads inside the client host, each from a chosen address."""

    def __init__(self, namespace: str, workers: int = 8) -> None:
        self.pool = ThreadPoolExecutor(
            workers, thread_name_prefix="client", initializer=enter_namespace, initargs=(namespace,)
        )

    def call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return self.pool.submit(function, *args, **kwargs).result()

    def submit(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        return self.pool.submit(function, *args, **kwargs)

    def request(self, *args: Any, **kwargs: Any) -> Response:
        return self.call(send, *args, **kwargs)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def send(
    url: str,
    *,
    method: str = "GET",
    body: Any = None,
    headers: Mapping[str, str] | None = None,
    source: str | None = None,
    timeout: float = 60,
) -> Response:
    """One HTTP request from ``source`` (an address of the client host)."""
    scheme, _, rest = url.partition("://")
    assert scheme == "http", url
    netloc, slash, path = rest.partition("/")
    host, _, port = netloc.partition(":")
    connection = HTTPConnection(
        host, int(port or 80), timeout=timeout, source_address=(source, 0) if source else None
    )
    data = None if body is None else json.dumps(body).encode()
    sent = {"Host": netloc, **(headers or {})}
    if data is not None:
        sent["Content-Type"] = "application/json"
    try:
        connection.request(method, slash + path, body=data, headers=sent)
        answer = connection.getresponse()
        return Response(answer.status, dict(answer.headers), answer.read())
    finally:
        connection.close()


class Lab:
    """Namespaces ``<prefix>-<host>`` on bridge ``br0`` in ``<prefix>-switch``."""

    def __init__(self, prefix: str, subnet: str, hosts: Mapping[str, Sequence[str]]) -> None:
        self.prefix = prefix
        self.subnet = subnet  # "10.231.N"
        self.hosts = {name: list(addresses) for name, addresses in hosts.items()}
        self.processes: list[subprocess.Popen[bytes]] = []
        self.made: list[str] = []

    def ns(self, host: str) -> str:
        return f"{self.prefix}-{host}"

    def address(self, host: str) -> str:
        return self.hosts[host][0]

    def open(self) -> None:
        switch = self.ns("switch")
        ip("netns", "add", switch)
        self.made.append(switch)
        ip("-n", switch, "link", "add", "br0", "type", "bridge")
        ip("-n", switch, "link", "set", "br0", "up")
        for index, (host, addresses) in enumerate(self.hosts.items()):
            namespace = self.ns(host)
            ip("netns", "add", namespace)
            self.made.append(namespace)
            port = f"port{index}"
            ip(
                "link", "add", "eth0", "netns", namespace, "type", "veth",
                "peer", "name", port, "netns", switch,
            )  # fmt: skip
            ip("-n", switch, "link", "set", port, "master", "br0", "up")
            ip("-n", namespace, "link", "set", "lo", "up")
            for address in addresses:
                ip("-n", namespace, "addr", "add", f"{address}/24", "dev", "eth0")
            ip("-n", namespace, "link", "set", "eth0", "up")

    def pids(self, host: str) -> set[int]:
        """Every process in the host's namespace (never this test's own process)."""
        completed = subprocess.run(
            ["ip", "netns", "pids", self.ns(host)], capture_output=True, text=True, check=False
        )
        return {int(pid) for pid in completed.stdout.split()} - {os.getpid()}

    def kill_host(self, host: str) -> set[int]:
        """SIGKILL every process of ``host``, as a power cut would; the pids killed."""
        killed: set[int] = set()
        for _ in range(20):  # a dying parent may have forked meanwhile
            pids = self.pids(host)
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    continue
                killed.add(pid)
            time.sleep(0.1)
        for process in self.processes:
            if process.poll() is None and process.pid in killed:
                process.wait(timeout=10)
        return killed

    def spawn(
        self, host: str, command: Sequence[str], *, env: Mapping[str, str], log: Path
    ) -> subprocess.Popen[bytes]:
        with log.open("ab") as output:
            process = subprocess.Popen(
                ["ip", "netns", "exec", self.ns(host), *command],
                cwd=ROOT,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes.append(process)
        return process

    def run(
        self, host: str, command: Sequence[str], *, env: Mapping[str, str], timeout: float = 180
    ) -> str:
        """Run ``command`` in ``host`` to its end; its output, or an AssertionError showing it."""
        completed = subprocess.run(
            ["ip", "netns", "exec", self.ns(host), *command],
            cwd=ROOT,
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if completed.returncode != 0:
            raise AssertionError(
                f"{' '.join(command)} on {host} exited with {completed.returncode}:\n"
                f"{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}"
            )
        return completed.stdout

    def close(self) -> None:
        for namespace in reversed(self.made):
            host = namespace.removeprefix(f"{self.prefix}-")
            if host != "switch":
                self.kill_host(host)
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        for namespace in reversed(self.made):
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, check=False)
        self.made.clear()


def wait_for(description: str, condition: Callable[[], Any], timeout: float = 60) -> Any:
    """Poll ``condition`` until it returns something true; that value."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except (OSError, HTTPException):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{description}: not within {timeout:g} s")
        time.sleep(0.2)


def tail(paths: Iterable[Path], size: int = 2000) -> str:
    """The ends of some log files, for an assertion's message."""
    return "\n".join(
        f"== {path.name}\n{path.read_text(errors='replace')[-size:]}"
        for path in paths
        if path.exists()
    )
