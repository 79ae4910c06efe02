"""A service compiled for the hot path, and how to reach it: connectors, pool keys, the Host header.

Rules:

1. ``ServiceTarget`` is a service row compiled once per snapshot: timeouts in seconds, the scheme,
   the default Host header, the balancer (when ``host`` names an Upstream entity), the ``connect`` hook
   and ``pool_identity``. Requests never read the row.
2. The connect step is a hook, chosen per service by protocol from ``CONNECTORS``: plain HTTP uses
   ``connect_plain`` (``loop.create_connection``), ``https`` (and stream ``tls``) use ``connect_tls`` (the TLS
   engine, ``gateway.tls.upstream.connect``). A connector connects the given ``UpstreamConnection`` to ``ip:port``
   and owns the connect timeout (so TLS can tell "while connecting" from "while SSL handshaking"); it gets
   ``upstream_host`` (nginx's ``$upstream_host``: the Host header sent, from which SNI and the host check
   derive). ``pool_key`` keys the keepalive pool: ``(ip, port)`` for plain HTTP, and for TLS
   ``(ip, port, upstream_host, *tls_profile.identity)`` - the complete, content-based TLS identity.
3. ``grpc``/``grpcs`` services are ``multiplexed``: their connectors (``gateway.upstream.h2.connect``) open HTTP/2
   connections (h2 prior knowledge, or TLS with ALPN ``h2`` under the same profile as ``https``), shared by
   concurrent streams in the pool's own table (``h2.pool.H2Pool``, keyed by the protocol plus the pool key above).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from gateway.tls.upstream.connect import open_upstream_tls
from gateway.tls.upstream.profile import UpstreamTlsProfile, identity_label
from gateway.upstream.connection import UpstreamConnection
from gateway.upstream.h2.connect import connect_h2_tls, connect_h2c

if TYPE_CHECKING:
    from gateway.upstream.balancer import Balancer

__all__ = [
    "CONNECTORS",
    "MULTIPLEXED",
    "Connector",
    "ServiceTarget",
    "connect_plain",
    "connect_tls",
    "host_header_for",
    "pool_key",
    "pool_name",
]

#: the protocol object a connector connects is an ``UpstreamConnection`` (HTTP/1.1) or, for the multiplexed
#: protocols, an ``H2UpstreamConnection``: each connector names its own
Connector = Callable[
    [asyncio.AbstractEventLoop, Any, str, int, "ServiceTarget", str],
    Awaitable[tuple[asyncio.BaseTransport, asyncio.BaseProtocol]],
]


async def connect_plain(
    loop: asyncio.AbstractEventLoop,
    up: UpstreamConnection,
    ip: str,
    port: int,
    service: ServiceTarget,
    upstream_host: str,
) -> tuple[asyncio.BaseTransport, asyncio.BaseProtocol]:
    """TCP connect for ``http`` services, bounded by the service's connect timeout (raises ``TimeoutError``)."""
    async with asyncio.timeout(service.connect_timeout):
        return await loop.create_connection(lambda: up, ip, port)


async def connect_tls(
    loop: asyncio.AbstractEventLoop,
    up: UpstreamConnection,
    ip: str,
    port: int,
    service: ServiceTarget,
    upstream_host: str,
) -> tuple[asyncio.BaseTransport, asyncio.BaseProtocol]:
    """TCP connect + TLS handshake for ``https``/``tls`` services under the service's compiled TLS profile.

    The connect timeout covers both steps (nginx's ``proxy_connect_timeout``). With session reuse on, the
    session cached for this exact pool key is offered, and the connection's own session is stored after its
    first complete response (``release_hook``): only connections that passed their checks get that far.

    Raises:
        gateway.tls.upstream.connect.HandshakeFailure: the handshake or its checks failed, or timed out.
        OSError: the TCP connect failed (``TimeoutError`` on timeout).
    """
    profile = service.tls_profile
    assert profile is not None, "connect_tls needs a service compiled with a TLS profile"
    pool = up.pool
    sessions = pool.sessions if profile.session_reuse and pool is not None else None
    session = sessions.get(up.key, profile.context) if sessions is not None else None
    transport, protocol = await open_upstream_tls(
        loop, lambda: up, ip, port, profile, upstream_host, service.connect_timeout, session
    )
    if sessions is not None:
        key = up.key
        context = profile.context

        def save_session(conn: UpstreamConnection) -> None:
            sessions.put(key, context, transport.get_ssl_session())

        up.release_hook = save_session
    return transport, protocol


CONNECTORS: dict[str, Connector] = {
    "http": connect_plain,
    "https": connect_tls,
    "tls": connect_tls,
    "grpc": connect_h2c,
    "grpcs": connect_h2_tls,
}
#: the service protocols spoken over HTTP/2 upstream, many requests per connection (rule 3)
MULTIPLEXED = frozenset(("grpc", "grpcs"))


def pool_key(ip: str, port: int, upstream_host: str, service: ServiceTarget) -> tuple[Any, ...]:
    """The keepalive-pool (and TLS session) key of one try: see rule 2."""
    identity = service.pool_identity
    if not identity:
        return (ip, port)
    return (ip, port, upstream_host, *identity)


def pool_name(key: tuple[Any, ...]) -> str:
    """Kong's pool name for debug logs: ``ip|port`` or ``ip|port|host|verify|depth|CAs|client cert``."""
    if len(key) == 2:
        return f"{key[0]}|{key[1]}"
    return f"{key[0]}|{key[1]}|{key[2]}|{identity_label(key[3:])}"


_DEFAULT_PORTS = {"http": 80, "https": 443, "grpc": 80, "grpcs": 443}


class ServiceTarget:
    """A service row compiled for the hot path."""

    __slots__ = (
        "balancer",
        "connect",
        "connect_timeout",
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


def host_header_for(hostname: str, port: int, scheme: str) -> str:
    """``set_host_header``: ``:port`` unless it is the scheme's default port."""
    if (port == 80 and scheme in ("http", "grpc")) or (port == 443 and scheme in ("https", "grpcs")):
        return hostname
    return f"{hostname}:{port}"
