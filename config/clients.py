"""Who the client is: its address, behind as many proxies as the environment trusts.

``TRUSTED_PROXIES`` (see settings) is either a count of proxies in front of the
app, or networks (CIDR) whose addresses are proxies. With nothing trusted (the
default) the client is the peer of the connection: an ``X-Forwarded-For`` it
sends is ignored, so it cannot pick its own identity for throttles and login
lockouts. Both use this one function.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from django.conf import settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_trusted_proxies(raw: str) -> int | tuple[Network, ...]:
    """``"0"``, ``"2"`` or ``"10.0.0.0/8,127.0.0.1"``; ValueError when malformed."""
    raw = raw.strip()
    if not raw or raw.isdigit():
        return int(raw or 0)
    return tuple(ipaddress.ip_network(part.strip()) for part in raw.split(",") if part.strip())


def _is_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def client_ip(request: Any) -> str:
    """The client's address as the trusted proxies report it (the peer's without any)."""
    peer = request.META.get("REMOTE_ADDR") or ""
    trusted = settings.TRUSTED_PROXIES
    if not trusted:
        return peer
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    # Nearest hop last: each proxy appends the address it received the request from.
    chain = [hop.strip() for hop in forwarded.split(",") if hop.strip()] + [peer]
    if isinstance(trusted, int):
        candidates = chain[-(trusted + 1) :]
        client = candidates[0]
        return client if _is_address(client) else peer
    client = peer
    for hop in reversed(chain):
        if not _is_address(hop):
            break
        client = hop
        if not any(ipaddress.ip_address(hop) in network for network in trusted):
            break
    return client
