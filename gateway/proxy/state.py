"""``ProxyState``: what every downstream connection shares (settings, logs, snapshot, pool, counters).

Rules:

- ``snapshot`` is reassigned by the runtime on configuration changes; each request reads it once when
  it starts (``Exchange.begin``) and keeps that object.
- ``protocol_factory(listener)`` returns the zero-argument factory for ``loop.create_server``; the
  parser class comes from ``http_parser`` (an import map, ``http1.PROTOCOLS``). An ``ssl`` listener gets a
  ``TlsListener`` in front of the same HTTP factory (kept in ``tls_listeners``; ``refresh_tls()`` after a
  SIGHUP rebuilds their base contexts). With ``http2``, an ``ssl`` listener's app is an ``AlpnDispatch``
  (HTTP/2 or that factory, by ALPN), a plain listener's a ``PrefaceSniff`` (h2c with prior knowledge or HTTP/1.1).
- ``begin_shutdown()`` closes idle keepalive connections now, marks busy ones to close after their
  current response and stops pooling upstream connections; ``wait_idle`` awaits an event (no polling);
  ``close()`` closes the upstream pool.
- Counters are plain integers updated by the connections (nginx ``stub_status`` meaning).
- It is where the proxy's parts meet: the downstream protocols (``gateway.downstream``), the exchange they
  create per request (``exchange_type``), the upstream pool and DNS cache (``gateway.upstream``).
- Derived settings are computed once here: header policy, head limits, the trusted-IP networks.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gateway.downstream.alpn import AlpnDispatch
from gateway.downstream.h2c import PrefaceSniff
from gateway.downstream.headers import DateCache, HeaderPolicy
from gateway.downstream.http1 import PROTOCOLS
from gateway.downstream.http2 import H2Connection
from gateway.downstream.request import HeadLimits, RequestHead
from gateway.downstream.tls_listener import TlsListener
from gateway.observability.accesslog import AccessLog
from gateway.observability.errorlog import ErrorLog
from gateway.proxy.exchange import Exchange
from gateway.settings import Listener, Settings
from gateway.upstream.dns import DnsCache, config_from_settings
from gateway.upstream.pool import UpstreamPool

if TYPE_CHECKING:
    from gateway.downstream.connection import HttpConnection
    from gateway.runtime.snapshot import Snapshot

__all__ = ["ProxyState"]

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ProxyState:
    """Shared state of the proxy listeners of one process."""

    def __init__(self, settings: Settings, error_log: ErrorLog, access_log: AccessLog, snapshot: Snapshot) -> None:
        self.settings = settings
        self.error_log = error_log
        self.access_log = access_log
        self.snapshot = snapshot
        #: what a downstream connection creates per request head: the proxy's ``Exchange`` (handed down, so that
        #: ``gateway.downstream`` never imports the proxy above it)
        self.exchange_type = Exchange
        self.header_policy = HeaderPolicy(settings.headers, settings.headers_upstream)
        #: ``allow_debug_header``: a ``Kong-Debug`` request gets Kong's debug headers and the TLS trace
        self.debug_header = settings.allow_debug_header
        self.head_limits = HeadLimits(
            settings.large_header_buffer_size,
            settings.large_header_buffer_count,
            settings.client_max_body_size,
            settings.underscores_in_headers,
            settings.ignore_invalid_headers,
        )
        self.date = DateCache()
        self.dns = DnsCache(config_from_settings(settings))
        self._trusted: tuple[_Network, ...] = tuple(_parse_networks(settings.trusted_ips))
        self._trusted_cache: dict[str, bool] = {}
        self._real_ip_header = settings.real_ip_header.lower()
        self._pool: UpstreamPool | None = None
        self.connections: set[HttpConnection] = set()
        #: accepted sockets that are not an ``HttpConnection`` yet (an ``ssl`` listener's first byte or handshake):
        #: a drain waits for them too (``settle_pending`` when they become one or go away)
        self.pending: set[Any] = set()
        self._conn_seq = 0
        self._idle_event: asyncio.Event | None = None
        self.shutting_down = False
        # nginx stub_status counters
        self.connections_accepted = 0
        self.connections_handled = 0
        self.connections_reading = 0
        self.connections_writing = 0
        self.total_requests = 0
        self.tls_listeners: list[TlsListener] = []

    # ------------------------------------------------------------------ wiring
    def protocol_factory(self, listener: Listener) -> Callable[[], asyncio.Protocol]:
        cls = PROTOCOLS[self.settings.http_parser]

        def factory() -> asyncio.Protocol:
            return cls(self, listener)

        if listener.ssl:
            app: Callable[[], asyncio.Protocol] = factory
            if listener.http2:  # ALPN h2 -> HTTP/2, anything else -> the same HTTP/1.1 connection
                app = functools.partial(AlpnDispatch, factory, functools.partial(H2Connection, self, listener))

            tls = TlsListener(self, listener, app, position=len(self.tls_listeners))
            self.tls_listeners.append(tls)
            return tls.protocol_factory
        if listener.http2:  # h2c with prior knowledge next to HTTP/1.1, told apart by the preface (``h2c``)
            return functools.partial(PrefaceSniff, factory, functools.partial(H2Connection, self, listener))
        return factory

    def refresh_tls(self) -> None:
        """Rebuild every ``ssl`` listener's base context from the current snapshot (after a SIGHUP)."""
        for tls in self.tls_listeners:
            tls.refresh()

    @property
    def pool(self) -> UpstreamPool:
        """The upstream pool, created on first use inside the running loop."""
        pool = self._pool
        if pool is None:
            s = self.settings
            pool = self._pool = UpstreamPool(
                asyncio.get_running_loop(),
                s.upstream_keepalive_pool_size,
                s.upstream_keepalive_max_requests,
                float(s.upstream_keepalive_idle_timeout),
            )
            if self.shutting_down:
                pool.shutdown()
        return pool

    # ------------------------------------------------------------------ connections
    def register(self, conn: HttpConnection) -> int:
        conn_id = self.next_conn_id()
        self.connections_accepted += 1
        self.connections_handled += 1
        self.connections.add(conn)
        if self.shutting_down:
            conn.closing = True
        return conn_id

    def next_conn_id(self) -> int:
        """The next ``*N`` connection number of the error log: one sequence per process, HTTP and stream connections
        alike, as nginx numbers every connection."""
        self._conn_seq += 1
        return self._conn_seq

    def unregister(self, conn: HttpConnection) -> None:
        self.connections.discard(conn)
        if not self.connections and not self.pending and self._idle_event is not None:
            self._idle_event.set()

    def settle_pending(self, item: Any) -> None:
        """A pending socket became an ``HttpConnection`` (registered already) or is gone."""
        self.pending.discard(item)
        if not self.connections and not self.pending and self._idle_event is not None:
            self._idle_event.set()

    @property
    def connections_active(self) -> int:
        return len(self.connections)

    @property
    def connections_waiting(self) -> int:
        return max(0, self.connections_active - self.connections_reading - self.connections_writing)

    # ------------------------------------------------------------------ client addresses
    def is_trusted(self, ip: str) -> bool:
        if not self._trusted:
            return False
        cached = self._trusted_cache.get(ip)
        if cached is None:
            try:
                addr = ipaddress.ip_address(ip)
            except ValueError:
                cached = False
            else:
                cached = any(addr in net for net in self._trusted if net.version == addr.version)
            if len(self._trusted_cache) > 4096:
                self._trusted_cache.clear()
            self._trusted_cache[ip] = cached
        return cached

    def real_ip(self, peer_ip: str, head: RequestHead) -> str:
        """nginx realip: the ``real_ip_header`` value when the peer is trusted (``real_ip_recursive`` aware)."""
        value = head.get(self._real_ip_header)
        if not value:
            return peer_ip
        candidates = [part.strip() for part in value.split(",") if part.strip()]
        if not candidates:
            return peer_ip
        if self.settings.real_ip_recursive:
            for candidate in reversed(candidates):
                if not self.is_trusted(candidate):
                    return candidate if _valid_ip(candidate) else peer_ip
            return candidates[0] if _valid_ip(candidates[0]) else peer_ip
        last = candidates[-1]
        return last if _valid_ip(last) else peer_ip

    # ------------------------------------------------------------------ lifecycle
    def begin_shutdown(self) -> None:
        self.shutting_down = True
        if self._pool is not None:
            self._pool.shutdown()
        for conn in list(self.connections):
            conn.shutdown()
        for item in list(self.pending):
            item.shutdown()

    async def wait_idle(self, timeout: float) -> bool:
        """True once every downstream connection is closed, False if ``timeout`` passes first.

        A socket accepted in the loop's last pass has a transport whose ``connection_made`` (registration here) is
        only scheduled (uvloop calls it soon, not at once); one pass of the loop lets it register, so it is drained
        (served, with its grace for the first request) rather than dropped when the process exits.
        """
        await asyncio.sleep(0)
        if not self.connections and not self.pending:
            return True
        if self._idle_event is None:
            self._idle_event = asyncio.Event()
        try:
            async with asyncio.timeout(timeout):
                await self._idle_event.wait()
        except TimeoutError:
            return not self.connections and not self.pending
        return True

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()


def _valid_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _parse_networks(values: tuple[str, ...]) -> list[_Network]:
    networks: list[_Network] = []
    for value in values:
        if value == "unix:":
            continue
        try:
            networks.append(ipaddress.ip_network(value, strict=False))
        except ValueError:
            continue
    return networks
