"""HTTP/2 upstream connections shared by concurrent streams, with Kong's three keepalive knobs.

Rules (the HTTP/1.1 pool's, ``upstream.pool``, adapted to multiplexing):

- The key is ``(protocol, pool_key)``: the peer, the upstream host and the complete TLS identity, plus the protocol,
  in a table of its own, so an HTTP/2 connection is never handed to an HTTP/1.1 request (or the reverse), nor a
  ``grpcs`` connection to a ``grpc`` service.
- ``stream(key)`` opens a stream on the newest connection of that key with room (``has_capacity``: the peer's
  ``SETTINGS_MAX_CONCURRENT_STREAMS``, ``max_requests``, no GOAWAY); None sends the exchange to connect a new one,
  unless a connection to that key is being opened (``opening``): the exchange then waits for it (``waiters``), and
  ``settle`` hands each waiter the outcome, so a burst of requests to a new peer shares one connection.
- ``upstream_keepalive_pool_size``: connections kept per key while they have no stream; 0 disables pooling (a
  connection is closed when its last stream ends). ``upstream_keepalive_idle_timeout``: a connection with no stream
  is closed after this long (0: never), with one handle moved by a deadline, as in the HTTP/1.1 pool.
- ``sessions``: the TLS sessions of ``grpcs`` connections, keyed like the connections (never shared with HTTP/1.1).
- After ``shutdown()`` nothing is pooled and every pooled connection is closed.
"""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.tls.upstream.connect import SessionCache
from gateway.upstream.failures import UpstreamFailure
from gateway.upstream.h2.connection import STREAM_LIMIT, H2UpstreamConnection
from gateway.upstream.h2.stream import H2UpstreamStream

__all__ = ["H2Pool"]


class H2Pool:
    """HTTP/2 upstream connections by ``(protocol, TLS identity)``."""

    __slots__ = ("_conns", "_opening", "closed", "idle_timeout", "loop", "max_requests", "sessions", "size")

    def __init__(self, loop: asyncio.AbstractEventLoop, size: int, max_requests: int, idle_timeout: float) -> None:
        self.loop = loop
        self.size = size
        self.max_requests = max_requests
        self.idle_timeout = idle_timeout
        self._conns: dict[Any, list[H2UpstreamConnection]] = {}
        #: the connection being opened per key (at most one: the others wait for it)
        self._opening: dict[Any, H2UpstreamConnection] = {}
        self.closed = False
        self.sessions = SessionCache()

    def connection(self, key: tuple[Any, ...], scheme: bytes) -> H2UpstreamConnection:
        """A new, not yet connected connection for ``key``, known as ``opening`` until ``settle``."""
        conn = H2UpstreamConnection(self.loop, self, key, scheme, self.max_requests)
        self._opening[key] = conn
        return conn

    def opening(self, key: Any) -> H2UpstreamConnection | None:
        """The connection being opened for ``key``, if a new waiter may still hope for a stream on it."""
        conn = self._opening.get(key)
        if conn is None or len(conn.waiters) + 1 >= STREAM_LIMIT:
            return None
        return conn

    def settle(self, conn: H2UpstreamConnection, failure: UpstreamFailure | None, abandoned: bool = False) -> None:
        """The opening of ``conn`` ended: shared from now on (``add``) unless it failed or was abandoned (its opener's
        client left), then each waiter learns it: the connection, the failure, or None (connect yourself)."""
        if self._opening.get(conn.key) is conn:
            del self._opening[conn.key]
        if failure is None and not abandoned:
            self.add(conn)
        waiters, conn.waiters = conn.waiters, []
        outcome: H2UpstreamConnection | UpstreamFailure | None = None if abandoned else failure or conn
        for waiter in waiters:
            waiter(outcome)

    def stream(self, key: Any) -> H2UpstreamStream | None:
        """A stream on a pooled connection with room, or None."""
        conns = self._conns.get(key)
        if not conns:
            return None
        for conn in reversed(conns):
            if conn.has_capacity():
                return conn.open_stream(reused=True)
        return None

    def add(self, conn: H2UpstreamConnection) -> None:
        """A connection the connector opened: shared from now on, unless pooling is off."""
        if self.closed or self.size <= 0:
            return
        self._conns.setdefault(conn.key, []).append(conn)

    def discard(self, conn: H2UpstreamConnection) -> None:
        """Forget a connection (closed, broken, or told to go away)."""
        conns = self._conns.get(conn.key)
        if conns and conn in conns:
            conns.remove(conn)
            if not conns:
                del self._conns[conn.key]

    def idle(self, conn: H2UpstreamConnection) -> None:
        """A connection's last stream ended: keep it (within ``size``, with the idle timeout) or close it."""
        conns = self._conns.get(conn.key)
        if self.closed or not conns or conn not in conns:
            conn.close()
            return
        if sum(1 for other in conns if not other.users) > self.size:
            self.discard(conn)
            conn.close()
            return
        if self.idle_timeout > 0:
            deadline = conn.idle_deadline = self.loop.time() + self.idle_timeout
            if conn.idle_handle is None:
                conn.idle_handle = self.loop.call_at(deadline, self._idle_check, conn)

    def _idle_check(self, conn: H2UpstreamConnection) -> None:
        conn.idle_handle = None
        deadline = conn.idle_deadline
        if conn.closed or not deadline or conn.users:
            return
        if self.loop.time() < deadline:
            conn.idle_handle = self.loop.call_at(deadline, self._idle_check, conn)
            return
        self.discard(conn)
        conn.close()

    def count(self, key: Any = None) -> int:
        """Pooled connections (for ``key``, or all), busy or not."""
        if key is not None:
            return len(self._conns.get(key, ()))
        return sum(len(conns) for conns in self._conns.values())

    def shutdown(self) -> None:
        """Stop pooling and close every pooled connection (streams still on them fail as a close)."""
        self.closed = True
        self.sessions.clear()
        conns = self._conns
        self._conns = {}
        for group in conns.values():
            for conn in group:
                conn.close()
