"""Where a stream connection goes and how it gets there: peers, tries, plain or TLS connects, nginx's failure words.

Rules (Kong's stream balancer phase, nginx's ``ngx_stream_proxy_module``):

1. Peers come from the same places as for HTTP (``gateway.upstream``): the service's Upstream entity (its balancer,
   the handle keeping the addresses that failed in this connection, the algorithm, health), else the service host
   (an IP literal, or a name through the ``DnsCache``). The client address is the hash value when the upstream hashes
   on ``ip``; nothing else can be hashed on a byte stream.
2. ``$upstream_host``, from which the upstream SNI and the host check derive (``gateway.tls.upstream.connect``
   ``peer_names`` strips the port and sends no SNI for an IP), is the client's SNI with ``preserve_host``, else
   ``host_header`` of the Upstream entity, else the target's or the service's host, with ``:port`` appended as
   Kong's ``set_host_header`` does.
3. A try is ``connect()`` (plain TCP, or TCP + TLS handshake for ``tls`` services) under the service's
   ``connect_timeout``, which covers both, as nginx's ``proxy_connect_timeout``. Its failure is an ``UpstreamFailure``
   (``gateway.upstream.failures``): ``connect() failed (111: Connection refused) while connecting to upstream``,
   ``upstream timed out (110: Connection timed out) while connecting to upstream``, ``upstream SSL certificate verify
   error: (21:unable to verify the first certificate) while SSL handshaking to upstream``...; every one is retried
   (``proxy_next_upstream on``) up to ``retries`` more times, each failure reported to the passive health checker
   first (Kong's balancer phase: a timeout as a timeout, anything else as a TCP failure).
4. A ``tls`` service connects under its compiled upstream TLS profile (``gateway.tls.upstream.profile``: layers 3 and
   4, the client certificate by Kong's precedence, ``tls_verify``, ``ca_certificates``, ``tls_verify_depth``), the
   same object its HTTP twin would use; no ALPN is offered (nginx's stream proxy offers none) and no session is
   resumed. Stream connections are never pooled.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gateway.tls.engine.errors import TlsHandshakeError
from gateway.tls.engine.transport import TlsProtocol
from gateway.tls.upstream.connect import describe_handshake_error, peer_names
from gateway.upstream.balancer import Handle, NoPeerError
from gateway.upstream.failures import Kind, Phase, UpstreamFailure
from gateway.upstream.target import ServiceTarget, host_header_for

if TYPE_CHECKING:
    from gateway.upstream.dns import DnsCache

__all__ = ["Connected", "PeerPicker", "open_peer"]


class PeerPicker:
    """The tries of one connection: the next ``(ip, port, upstream_host)``, failures reported, the handle released."""

    __slots__ = ("_dns", "_handle", "_preserved", "service", "tries_left")

    def __init__(self, service: ServiceTarget, dns: DnsCache, client_ip: str, preserved_host: str | None) -> None:
        self.service = service
        self._dns = dns
        #: the client's SNI when the route preserves the host (rule 2), else None
        self._preserved = preserved_host
        self.tries_left = service.retries + 1
        balancer = service.balancer
        self._handle: Handle | None = None
        if balancer is not None:
            handle = self._handle = balancer.new_handle(None)
            if balancer.hashing:
                handle.hash_value = balancer.hash_value(client_ip, _no_header, "", "", None, None, handle)

    async def next(self) -> tuple[str, int, str]:
        """The peer of the next try and its ``$upstream_host``.

        Raises:
            NoPeerError: no address (503: ``name resolution failed``, ``failure to get a peer from the
                ring-balancer``).
        """
        service = self.service
        balancer = service.balancer
        if balancer is not None:
            handle = self._handle
            assert handle is not None
            if balancer.needs_dns(time.monotonic()):
                refresh = balancer.refresh_dns(self._dns)  # in the background: stale addresses serve meanwhile
                if balancer.unresolved():
                    await refresh
            address = balancer.get_peer(handle)
            ip, port = address.ip, address.port
            host = host_header_for(balancer.host_header or address.hostname, port, service.protocol)
        else:
            port, host = service.port, service.host_header
            if service.host_is_ip:  # ``is_ip_literal(service.host)``, computed once per snapshot
                ip = service.host.strip("[]")
            else:
                ip = self._dns.first_cached(service.host) or (await self._dns.resolve(service.host))[0]
        return ip, port, (self._preserved or host)

    def failed(self, failure: UpstreamFailure) -> bool:
        """Count a failed try, report it to the passive health checker; True if another try may follow."""
        self.tries_left -= 1
        balancer = self.service.balancer
        handle = self._handle
        retry = failure.retryable and self.tries_left > 0
        if retry and balancer is not None and handle is not None:
            if failure.timeout:
                balancer.report_timeout(handle)
            else:
                balancer.report_tcp_failure(handle)
        return retry

    def finish(self, status: int) -> None:
        """The connection is over: Kong's log phase reports its stream status (200, 502...) and releases the peer."""
        balancer = self.service.balancer
        handle = self._handle
        if balancer is None or handle is None or handle.address is None:
            return
        self._handle = None
        balancer.report_http_status(handle, status)
        balancer.release(handle)


def _no_header(name: str) -> str | None:
    return None


class Connected:
    """A connected upstream: the transport to write to and, for TLS, the engine protocol (to half-close)."""

    __slots__ = ("raw", "tls", "transport")

    def __init__(self, transport: asyncio.BaseTransport, raw: asyncio.BaseTransport, tls: TlsProtocol | None) -> None:
        self.transport = transport
        self.raw = raw
        self.tls = tls


async def open_peer(
    loop: asyncio.AbstractEventLoop,
    factory: Callable[[], asyncio.Protocol],
    ip: str,
    port: int,
    service: ServiceTarget,
    upstream_host: str,
) -> Connected | UpstreamFailure:
    """One try (rule 3): connected, or the failure as nginx words it."""
    deadline = loop.time() + service.connect_timeout
    profile = service.tls_profile if service.protocol == "tls" else None
    tls: TlsProtocol | None = None
    waiter: asyncio.Future[None] | None = None
    protocol: Callable[[], asyncio.Protocol] = factory
    if profile is not None:
        sni, check_name = peer_names(upstream_host)
        waiter = loop.create_future()
        tls = TlsProtocol(
            profile.context,
            factory,
            server_side=False,
            server_hostname=sni,
            verify=profile.verify,
            verify_hostname=check_name if profile.verify else None,
            handshake_timeout=None,
            waiter=waiter,
        )
        engine = tls
        protocol = lambda: engine  # noqa: E731
    raw: asyncio.BaseTransport | None = None
    try:
        async with asyncio.timeout_at(deadline):
            raw, _ = await loop.create_connection(protocol, ip, port)
    except TimeoutError:
        return UpstreamFailure(Kind.TIMEOUT, Phase.CONNECTING)
    except OSError as exc:
        errno = exc.errno or 0
        # asyncio rewrites strerror ("Connect call failed ..."): log the C library's text, as nginx does
        return UpstreamFailure(Kind.ERROR, Phase.CONNECTING, errno, os.strerror(errno) if errno else str(exc))
    if tls is None or waiter is None:
        return Connected(raw, raw, None)
    try:
        async with asyncio.timeout_at(deadline):
            await waiter
    except TimeoutError:
        raw.abort()
        return UpstreamFailure(Kind.TIMEOUT, Phase.HANDSHAKING)
    except TlsHandshakeError as exc:
        failure = describe_handshake_error(exc)
        kind = Kind.TIMEOUT if failure.timeout else Kind.TLS
        return UpstreamFailure(kind, Phase.HANDSHAKING, 0, failure.reason, failure.level)
    except BaseException:  # cancelled (the client went away): nothing may outlive the connection
        raw.abort()
        raise
    transport = tls.app_transport
    assert transport is not None
    return Connected(transport, raw, tls)


def no_peer_text(exc: NoPeerError, host: str) -> str:
    """The error line for a connection that found no peer (Kong answers 503 and closes a stream)."""
    if exc.message == "name resolution failed":
        return f"DNS resolution failed: {exc.detail or exc.message}. Tried: {host}"
    return f"failed the initial dns/balancer resolve for '{host}' with: {exc.message}"


def client_ip_of(peer: Any) -> str:
    return peer[0] if isinstance(peer, tuple) else "unix:"
