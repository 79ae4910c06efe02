"""Where a request goes: service host -> (ip, port, hostname), through Upstream entities and a DNS cache.

Rules (``kong/runloop/balancer/init.lua`` ``execute``):

1. A service host that is an IP literal is used as is.
2. A service host that names an ``upstreams`` entity is balanced over that upstream's targets
   (weighted round-robin; weight 0 targets are skipped; the target's port wins, else the service
   port). No target -> ``503 failure to get a peer from the ring-balancer``. ``upstream.host_header``,
   when set, becomes the hostname used for the upstream Host header.
3. Any other name is resolved with ``loop.getaddrinfo`` (never a blocking resolver), cached for
   ``DNS_TTL`` seconds (failures for ``DNS_ERROR_TTL``); a failed resolution is
   ``503 name resolution failed``.

Health checks are not implemented (every target is considered healthy).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["DNS_ERROR_TTL", "DNS_TTL", "Balancer", "DnsCache", "NoPeerError", "is_ip_literal", "parse_target"]

DNS_TTL = 30.0
DNS_ERROR_TTL = 1.0


class NoPeerError(Exception):
    """No address for this request; ``status`` and ``message`` are what Kong answers (a 503)."""

    def __init__(self, status: int, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.detail = detail


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def parse_target(target: str, default_port: int = 8000) -> tuple[str, int]:
    """``host:port`` / ``[v6]:port`` / ``host`` -> (host, port). Kong's targets default to port 8000."""
    if target.startswith("["):
        end = target.find("]")
        host = target[1:end]
        rest = target[end + 1 :]
        return host, int(rest[1:]) if rest.startswith(":") else default_port
    if target.count(":") == 1:
        host, _, port = target.partition(":")
        return host, int(port)
    return target, default_port


class DnsCache:
    """Name -> addresses with a short TTL. Lookups that miss await ``getaddrinfo`` (a thread in the loop's pool)."""

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, list[str] | None, str]] = {}

    def cached(self, name: str) -> list[str] | None:
        entry = self._entries.get(name)
        if entry is not None and entry[0] > time.monotonic() and entry[1]:
            return entry[1]
        return None

    async def resolve(self, name: str) -> list[str]:
        """All IPv4/IPv6 addresses of ``name`` (IPv4 first). Raises ``NoPeerError`` (503) when there are none."""
        now = time.monotonic()
        entry = self._entries.get(name)
        if entry is not None and entry[0] > now:
            if entry[1] is None:
                raise NoPeerError(503, "name resolution failed", entry[2])
            return entry[1]
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(name, None, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            detail = str(exc)
            self._entries[name] = (now + DNS_ERROR_TTL, None, detail)
            raise NoPeerError(503, "name resolution failed", detail) from None
        v4 = [str(info[4][0]) for info in infos if info[0] == socket.AF_INET]
        v6 = [str(info[4][0]) for info in infos if info[0] == socket.AF_INET6]
        addresses = list(dict.fromkeys(v4 + v6))
        if not addresses:
            self._entries[name] = (now + DNS_ERROR_TTL, None, "empty record received")
            raise NoPeerError(503, "name resolution failed", "empty record received")
        self._entries[name] = (now + DNS_TTL, addresses, "")
        return addresses


class Balancer:
    """One ``upstreams`` entity: its targets and a smooth weighted round-robin over them."""

    __slots__ = ("_current", "host_header", "name", "targets")

    def __init__(self, upstream: Mapping[str, Any], targets: Sequence[Mapping[str, Any]]) -> None:
        self.name: str = upstream["name"]
        self.host_header: str | None = upstream.get("host_header")
        self.targets: list[tuple[str, int | None, int]] = []
        for row in targets:
            weight = int(row.get("weight", 100))
            if weight <= 0:
                continue
            host, port = parse_target(str(row["target"]))
            self.targets.append((host, port, weight))
        self._current = [0] * len(self.targets)

    def next_target(self) -> tuple[str, int | None]:
        """Smooth weighted round-robin (nginx's algorithm): deterministic and evenly interleaved."""
        if not self.targets:
            raise NoPeerError(503, "failure to get a peer from the ring-balancer")
        total = 0
        best = 0
        for i, (_, _, weight) in enumerate(self.targets):
            self._current[i] += weight
            total += weight
            if self._current[i] > self._current[best]:
                best = i
        self._current[best] -= total
        host, port, _ = self.targets[best]
        return host, port
