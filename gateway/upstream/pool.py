"""Upstream keepalive pool: idle connections by key, with Kong's three knobs.

Rules (reference section 4):

- ``upstream_keepalive_pool_size``: idle connections kept per key; 0 disables pooling (every
  connection is closed after its response).
- ``upstream_keepalive_max_requests``: a connection that has served this many requests is closed
  instead of pooled; 0 means unlimited.
- ``upstream_keepalive_idle_timeout`` (seconds): an idle connection is closed after this long; 0 means
  no idle timeout.
- The key is ``upstream.pool_key(...)``: ``(ip, port)`` for plain HTTP, and for TLS the peer, the upstream host
  and the complete content-based TLS identity (verify, depth, trusted CA set, client certificate), so a
  connection made under one identity is never handed to a request under another.
- ``sessions`` is the upstream TLS session cache, keyed exactly like the pool (it outlives pooled connections:
  with ``upstream_keepalive_pool_size = 0`` sessions are still resumed). A connection's ``release_hook`` runs
  once, at its first release after a complete response; the TLS connector uses it to store the session.
- Idle connections are a LIFO stack per key (the most recently used is the warmest). A connection
  that the peer closed or wrote to while idle has already marked itself ``closed`` and removed itself
  (``UpstreamConnection.data_received``/``connection_lost``), and ``acquire`` skips any closed one.
- After ``shutdown()`` nothing is pooled any more and idle connections are closed.
- ``multiplexed`` is the table of HTTP/2 connections (``grpc``/``grpcs`` services, ``h2.pool.H2Pool``) under the same
  three knobs: a separate table, so the two kinds never mix; ``shutdown`` closes both.
"""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.tls.upstream.connect import SessionCache
from gateway.upstream.connection import UpstreamConnection
from gateway.upstream.h2.pool import H2Pool

__all__ = ["UpstreamPool"]


class UpstreamPool:
    """Idle upstream connections keyed by peer identity."""

    __slots__ = (
        "_idle",
        "closed",
        "hits",
        "idle_timeout",
        "loop",
        "max_requests",
        "misses",
        "multiplexed",
        "sessions",
        "size",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, size: int, max_requests: int, idle_timeout: float) -> None:
        self.loop = loop
        self.size = size
        self.max_requests = max_requests
        self.idle_timeout = idle_timeout
        self._idle: dict[Any, list[UpstreamConnection]] = {}
        self.closed = False
        self.hits = 0
        self.misses = 0
        self.sessions = SessionCache()
        self.multiplexed = H2Pool(loop, size, max_requests, idle_timeout)

    def acquire(self, key: Any) -> UpstreamConnection | None:
        """An idle, open connection for ``key``, or None."""
        stack = self._idle.get(key)
        while stack:
            conn = stack.pop()
            if not conn.closed and conn.transport is not None and not conn.transport.is_closing():
                conn.reused = True
                self.hits += 1
                return conn
        self.misses += 1
        return None

    def release(self, conn: UpstreamConnection, reusable: bool, now: float = 0.0) -> bool:
        """Return a connection after a complete response; it is pooled (True) or closed (False) by the rules above.
        ``now``: the loop's time of the read that completed the response, when the caller has it (its idle timeout
        starts there; 0.0: the loop's clock is read)."""
        hook = conn.release_hook
        if hook is not None:
            conn.release_hook = None
            hook(conn)
        conn.detach()
        if (
            not reusable
            or self.closed
            or self.size <= 0
            or conn.closed
            or (self.max_requests > 0 and conn.requests >= self.max_requests)
        ):
            conn.close()
            return False
        stack = self._idle.setdefault(conn.key, [])
        if len(stack) >= self.size:
            stack.pop(0).close()
        stack.append(conn)
        if self.idle_timeout > 0:
            # one handle per connection, moved by a deadline (lesson 10): a busy connection's timer that fires
            # finds ``idle_deadline == 0`` and is dropped; the next release arms a new one
            deadline = conn.idle_deadline = (now or self.loop.time()) + self.idle_timeout
            if conn.idle_handle is None:
                conn.idle_handle = self.loop.call_at(deadline, self._idle_check, conn)
        return True

    def _idle_check(self, conn: UpstreamConnection) -> None:
        conn.idle_handle = None
        deadline = conn.idle_deadline
        if conn.closed or not deadline:
            return
        if self.loop.time() < deadline:
            conn.idle_handle = self.loop.call_at(deadline, self._idle_check, conn)
            return
        self.discard(conn)
        conn.close()

    def discard(self, conn: UpstreamConnection) -> None:
        """Forget an idle connection (it was closed by the peer or expired)."""
        stack = self._idle.get(conn.key)
        if stack and conn in stack:
            stack.remove(conn)
            if not stack:
                del self._idle[conn.key]

    def idle_count(self, key: Any = None) -> int:
        if key is not None:
            return len(self._idle.get(key, ()))
        return sum(len(s) for s in self._idle.values())

    def shutdown(self) -> None:
        """Stop pooling and close every idle connection."""
        self.closed = True
        self.sessions.clear()
        self.multiplexed.shutdown()
        idle = self._idle
        self._idle = {}
        for stack in idle.values():
            for conn in stack:
                conn.close()
