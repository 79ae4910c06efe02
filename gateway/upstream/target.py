"""A service row compiled for the hot path (``ServiceTarget``), its pool key and its Host header.

Split from ``service`` (which keeps the connectors) so that it can be compiled (``gateway/compiled.py``): every
request reads a handful of its fields (retries, host, port, timeouts, ...), and a compiled exchange reads a
compiled class's fields directly, where it reads an interpreted one's by name. ``service`` re-exports all of it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

from gateway.observability.tls_metrics import TLS
from gateway.tls.upstream.profile import UpstreamTlsProfile

if TYPE_CHECKING:
    from gateway.upstream.balancer import Balancer

__all__ = ["MULTIPLEXED", "Connector", "ServiceTarget", "host_header_for", "pool_key"]

#: the protocol object a connector connects is an ``UpstreamConnection`` (HTTP/1.1) or, for the multiplexed
#: protocols, an ``H2UpstreamConnection``: each connector names its own
Connector = Callable[
    [asyncio.AbstractEventLoop, Any, str, int, "ServiceTarget", str],
    Awaitable[tuple[asyncio.BaseTransport, asyncio.BaseProtocol]],
]


#: the service protocols spoken over HTTP/2 upstream, many requests per connection (rule 3)
MULTIPLEXED: Final = frozenset(("grpc", "grpcs"))


def pool_key(ip: str, port: int, upstream_host: str, service: ServiceTarget) -> tuple[Any, ...]:
    """The keepalive-pool (and TLS session) key of one try: see rule 2."""
    identity = service.pool_identity
    if not identity:
        return (ip, port)
    return (ip, port, upstream_host, *identity)


_DEFAULT_PORTS: Final = {"http": 80, "https": 443, "grpc": 80, "grpcs": 443}


class ServiceTarget:
    """A service row compiled for the hot path."""

    __slots__ = (
        "balancer",
        "connect",
        "connect_timeout",
        "connections",
        "enabled",
        "host",
        "host_header",
        "host_is_ip",
        "id",
        "multiplexed",
        "name",
        "path",
        "pool_identity",
        "port",
        "protocol",
        "read_timeout",
        "retries",
        "row",
        "tls_profile",
        "write_timeout",
    )

    def __init__(
        self,
        row: Mapping[str, Any],
        balancer: Balancer | None,
        connect: Connector | None,
        host_is_ip: bool,
        pool_identity: tuple[Any, ...] = (),
        tls_profile: UpstreamTlsProfile | None = None,
    ) -> None:
        self.row = row
        self.id: str = row["id"]
        self.name: str | None = row.get("name")
        self.protocol: str = row.get("protocol") or "http"
        self.host: str = row["host"]
        port = row.get("port")
        self.port: int = int(port) if port is not None else _DEFAULT_PORTS.get(self.protocol, 80)
        self.path: str = row.get("path") or "/"
        retries = row.get("retries")
        self.retries: int = int(retries) if retries is not None else 5
        self.connect_timeout: float = int(row.get("connect_timeout") or 60000) / 1000.0
        self.write_timeout: float = int(row.get("write_timeout") or 60000) / 1000.0
        self.read_timeout: float = int(row.get("read_timeout") or 60000) / 1000.0
        self.enabled: bool = row.get("enabled", True) is not False
        #: HTTP/2 upstream (rule 3): the exchange opens a stream on a shared connection instead of a pooled one
        self.multiplexed = self.protocol in MULTIPLEXED
        self.balancer = balancer
        self.connect = connect  # None: no connector for this protocol (answered with 502)
        self.host_is_ip = host_is_ip
        self.pool_identity = pool_identity
        self.tls_profile = tls_profile
        #: the Host header sent to ``host:port`` (services without a balancer), compiled once, not per request
        self.host_header = host_header_for(self.host, self.port, self.protocol)
        #: ``kong_upstream_connections_total`` of this service's label (``service.name or service.host``)
        self.connections = TLS.connection_counts(self.name or self.host)


def host_header_for(hostname: str, port: int, scheme: str) -> str:
    """``set_host_header``: ``:port`` unless it is the scheme's default port."""
    if (port == 80 and scheme in ("http", "grpc")) or (port == 443 and scheme in ("https", "grpcs")):
        return hostname
    return f"{hostname}:{port}"
