"""What a balancer balances over: targets, their addresses (each with its health), and a request's handle.

Plain data shared by the balancer, the algorithms and the health checker; it imports none of them, so they all
import it and none imports another to learn what an address is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.tls.engine.hostnames import is_ip_literal
from gateway.upstream.health import TargetHealth

__all__ = ["ALWAYS_HEALTHY", "Address", "Handle", "Target", "parse_target"]


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


class _AlwaysHealthy:
    """The health of an address nobody checks: always available."""

    __slots__ = ()
    available = True
    state = "healthy"


ALWAYS_HEALTHY: Any = _AlwaysHealthy()


class Address:
    """One ``ip:port`` of a target, with its weight, health and in-flight count (least-connections)."""

    __slots__ = ("connections", "health", "ip", "port", "target", "weight")

    def __init__(self, target: Target, ip: str, port: int, weight: int) -> None:
        self.target = target
        self.ip = ip
        self.port = port
        self.weight = weight
        self.connections = 0
        self.health: TargetHealth | _AlwaysHealthy = ALWAYS_HEALTHY

    @property
    def hostname(self) -> str:
        return self.target.name

    def __repr__(self) -> str:
        return f"Address({self.target.name} {self.ip}:{self.port} w={self.weight})"


class Target:
    """One ``targets`` row: ``name:port`` and weight, and the addresses its name currently resolves to."""

    __slots__ = ("addresses", "dns_source", "expires", "id", "is_name", "name", "port", "row", "weight")

    def __init__(self, row: Mapping[str, Any]) -> None:
        self.row = row
        self.id = str(row.get("id") or "")
        self.name, self.port = parse_target(str(row["target"]))
        self.weight = max(0, int(row.get("weight", 100) if row.get("weight") is not None else 100))
        self.is_name = not is_ip_literal(self.name)
        self.addresses: list[Address] = []
        self.expires = float("inf")
        self.dns_source = "AAAA" if ":" in self.name else "A"
        if not self.is_name:
            self.addresses.append(Address(self, self.name.strip("[]"), self.port, self.weight))
        else:
            self.expires = 0.0  # never resolved
            self.dns_source = "unknown"

    @property
    def key(self) -> str:
        """``name:port`` as the ``target`` field spells it (the health endpoint's key)."""
        return str(self.row["target"])


class Handle:
    """A request's state in its balancer across retries."""

    __slots__ = ("address", "counted", "failed", "hash_index", "hash_value", "set_cookie")

    def __init__(self, hash_value: str | None) -> None:
        self.hash_value = hash_value
        self.hash_index = -1
        self.address: Address | None = None
        self.failed: set[Address] = set()
        self.counted = False
        #: ``Set-Cookie`` value to add to the response (``hash_on = cookie`` created one), or None
        self.set_cookie: str | None = None
