"""``SharedState``: what every downstream connection of a process shares and reads per request, as one class.

The proxy's ``ProxyState`` is one (it adds the snapshot, the upstream pool, DNS and the listeners); nothing here
imports the proxy above it, whose ``Exchange`` is handed down as ``exchange_type``.

Why a class rather than a Protocol: the connections are compiled with mypyc (``gateway/compiled.py``), and a compiled
class reads the attributes of a compiled class as struct fields, while an object it knows only by a Protocol costs a
lookup by name per read (a dict probe and a type walk: ~150 instructions). A connection reads about a dozen of these
per request - the ``stub_status`` counters, the timeouts, the logs.

Rules:

- Counters are plain integers updated by the connections (nginx ``stub_status`` meaning).
- The timeouts a connection re-arms per request are copied from ``settings`` as floats once, here.
- ``register``/``unregister`` keep the open connections (a drain closes them); the registry's idle event is the
  proxy's (``ProxyState.wait_idle``), set here when the last connection or pending socket goes.
- ``is_trusted``/``real_ip``: nginx's ``set_real_ip_from`` / ``real_ip_header`` / ``real_ip_recursive``, with the
  trusted networks parsed once and a bounded cache per peer address.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable
from typing import Any, Final, Protocol

from gateway.downstream.exchange import DownstreamExchange
from gateway.downstream.flow import TickWrites
from gateway.downstream.headers import DateCache, HeaderPolicy
from gateway.downstream.request import HeadLimits, RequestHead
from gateway.observability.accesslog import AccessLog
from gateway.observability.errorlog import ErrorLog
from gateway.settings import Settings

__all__ = ["Pending", "Registered", "SharedState"]

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_TRUST_CACHE: Final = 4096  # peer addresses remembered by ``is_trusted`` before the cache starts over


class Pending(Protocol):
    """An accepted socket a drain waits for: a TLS handshake, a first byte, a stream session."""

    def shutdown(self) -> None: ...


class Registered(Pending, Protocol):
    """A downstream connection as the registry sees it (HTTP/1.x or HTTP/2)."""

    closing: bool


class SharedState:
    """The downstream half of the proxy's state (``proxy.state.ProxyState`` is the whole)."""

    def __init__(
        self,
        settings: Settings,
        error_log: ErrorLog,
        access_log: AccessLog,
        exchange_type: Callable[[Any, RequestHead], DownstreamExchange],
    ) -> None:
        self.settings = settings
        self.error_log = error_log
        self.access_log = access_log
        #: the logs' switches that a request reads, as fields of this compiled class (each a dictionary lookup on
        #: the interpreted log objects): both are fixed for the logs' life (``ErrorLog``'s level is set when it is
        #: made; ``AccessLog.enabled`` says whether it has a path)
        self.debug_logging: bool = error_log.debug_enabled
        self.access_logging: bool = access_log.enabled
        #: what a connection creates per request head: the proxy's ``Exchange`` (handed down)
        self.exchange_type = exchange_type
        self.header_policy = HeaderPolicy(settings.headers, settings.headers_upstream)
        self.head_limits = HeadLimits(
            settings.large_header_buffer_size,
            settings.large_header_buffer_count,
            settings.client_max_body_size,
            settings.underscores_in_headers,
            settings.ignore_invalid_headers,
        )
        self.date = DateCache()
        #: the connections' writes held for the end of the loop's tick (``flow.TickWrites``), both sides'
        self.tick_writes = TickWrites()
        self.client_header_timeout = float(settings.client_header_timeout)
        self.client_body_timeout = float(settings.client_body_timeout)
        self.keepalive_timeout = float(settings.keepalive_timeout)
        self._trusted: tuple[_Network, ...] = tuple(_parse_networks(settings.trusted_ips))
        self._trusted_cache: dict[str, bool] = {}
        self._real_ip_header = settings.real_ip_header.lower()
        self._real_ip_recursive = settings.real_ip_recursive
        self.connections: set[Registered] = set()
        #: accepted sockets that are not a connection yet (an ``ssl`` listener's first byte or handshake): a drain
        #: waits for them too (``settle_pending`` when they become one or go away)
        self.pending: set[Pending] = set()
        self._conn_seq = 0
        self._idle_event: asyncio.Event | None = None
        self.shutting_down = False
        # nginx stub_status counters
        self.connections_accepted = 0
        self.connections_handled = 0
        self.connections_reading = 0
        self.connections_writing = 0
        self.total_requests = 0

    # ------------------------------------------------------------------ connections
    def register(self, conn: Registered) -> int:
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

    def unregister(self, conn: Registered) -> None:
        self.connections.discard(conn)
        self._check_idle()

    def settle_pending(self, item: Pending) -> None:
        """A pending socket became a connection (registered already) or is gone."""
        self.pending.discard(item)
        self._check_idle()

    def _check_idle(self) -> None:
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
            if len(self._trusted_cache) > _TRUST_CACHE:
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
        if self._real_ip_recursive:
            for candidate in reversed(candidates):
                if not self.is_trusted(candidate):
                    return candidate if _valid_ip(candidate) else peer_ip
            return candidates[0] if _valid_ip(candidates[0]) else peer_ip
        last = candidates[-1]
        return last if _valid_ip(last) else peer_ip


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
