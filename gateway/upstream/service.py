"""A service compiled for the hot path, and how to reach it: connectors, pool keys, the Host header.

Rules:

1. ``ServiceTarget`` (``target.py``, compiled) is a service row compiled once per snapshot: timeouts in seconds,
   the scheme, the default Host header, the balancer (when ``host`` names an Upstream entity), the ``connect`` hook
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
from typing import Any

from gateway.tls.upstream.connect import open_upstream_tls
from gateway.tls.upstream.profile import identity_label
from gateway.upstream.connection import UpstreamConnection
from gateway.upstream.h2.connect import connect_h2_tls, connect_h2c
from gateway.upstream.target import MULTIPLEXED, Connector, ServiceTarget, host_header_for, pool_key

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


def pool_name(key: tuple[Any, ...]) -> str:
    """Kong's pool name for debug logs: ``ip|port`` or ``ip|port|host|verify|depth|CAs|client cert``."""
    if len(key) == 2:
        return f"{key[0]}|{key[1]}"
    return f"{key[0]}|{key[1]}|{key[2]}|{identity_label(key[3:])}"
