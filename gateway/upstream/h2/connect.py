"""Opening an HTTP/2 upstream connection: h2 prior knowledge over TCP (``grpc``), TLS with ALPN ``h2`` (``grpcs``).

``grpcs`` goes through the same TLS machinery as ``https`` (``gateway.tls.upstream``): the service's compiled profile
(client certificate service > upstream entity > ``client_ssl_cert``, ``tls_verify``, the trusted CAs, the depth), SNI
and the host check from ``$upstream_host``, nginx's failure lines, the session cache (keyed like the connection). Only
the ALPN offer differs, and its answer is checked: a peer that does not pick ``h2`` fails the try as a handshake error
(Kong's 502) with the line ``upstream SSL did not negotiate ALPN "h2" (...)``, before any HTTP/2 frame is sent.
"""

from __future__ import annotations

import asyncio
from typing import Final, Protocol

from gateway.tls.engine.errors import TlsHandshakeError
from gateway.tls.upstream.connect import HandshakeFailure, open_upstream_tls
from gateway.tls.upstream.profile import UpstreamTlsProfile
from gateway.upstream.h2.connection import H2UpstreamConnection

__all__ = ["H2_ALPN", "SCHEMES", "ConnectTarget", "alpn_refused", "connect_h2_tls", "connect_h2c"]

#: what a ``grpcs`` connection offers in ALPN
H2_ALPN: Final = ("h2",)
#: ``:scheme`` by service protocol
SCHEMES: Final = {"grpc": b"http", "grpcs": b"https"}


class ConnectTarget(Protocol):
    """What a connector reads of the service (``upstream.service.ServiceTarget``)."""

    @property
    def connect_timeout(self) -> float: ...

    @property
    def tls_profile(self) -> UpstreamTlsProfile | None: ...


def alpn_refused(selected: str | None) -> HandshakeFailure:
    """The failure of a TLS peer that did not pick ``h2``: a handshake error, in the words of the error line."""
    picked = f'selected "{selected}"' if selected else "no protocol selected"
    reason = f'upstream SSL did not negotiate ALPN "h2" ({picked})'
    return HandshakeFailure(reason, "error", False, TlsHandshakeError("no application protocol", kind="protocol"))


async def connect_h2c(
    loop: asyncio.AbstractEventLoop,
    up: H2UpstreamConnection,
    ip: str,
    port: int,
    service: ConnectTarget,
    upstream_host: str,
) -> tuple[asyncio.BaseTransport, asyncio.BaseProtocol]:
    """TCP connect for ``grpc`` services (bounded by the connect timeout), then the preface: h2 prior knowledge."""
    async with asyncio.timeout(service.connect_timeout):
        transport, protocol = await loop.create_connection(lambda: up, ip, port)
    up.start()
    return transport, protocol


async def connect_h2_tls(
    loop: asyncio.AbstractEventLoop,
    up: H2UpstreamConnection,
    ip: str,
    port: int,
    service: ConnectTarget,
    upstream_host: str,
) -> tuple[asyncio.BaseTransport, asyncio.BaseProtocol]:
    """TCP connect + TLS handshake with ALPN ``h2`` under the service's profile, then the preface.

    Raises:
        gateway.tls.upstream.connect.HandshakeFailure: the handshake or its checks failed, timed out, or the peer did
            not pick ``h2``.
        OSError: the TCP connect failed (``TimeoutError`` on timeout).
    """
    profile = service.tls_profile
    assert profile is not None, "connect_h2_tls needs a service compiled with a TLS profile"
    pool = up.pool
    sessions = pool.sessions if profile.session_reuse else None
    session = sessions.get(up.key, profile.context) if sessions is not None else None
    transport, protocol = await open_upstream_tls(
        loop, lambda: up, ip, port, profile, upstream_host, service.connect_timeout, session, alpn=H2_ALPN
    )
    info = transport.get_extra_info("tls")
    selected = info.alpn if info is not None else None
    if selected != "h2":
        transport.abort()
        raise alpn_refused(selected)
    if sessions is not None:
        key = up.key
        context = profile.context

        def save_session() -> None:
            sessions.put(key, context, transport.get_ssl_session())

        up.session_hook = save_session
    up.start()
    return transport, protocol
