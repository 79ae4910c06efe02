"""An exchange's response relay: the upstream connection's events (head, body, end, failure) turned into the
client's response, and flow control both ways (rules 4 and 5 of ``proxy.exchange``).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from gateway.downstream.flow import PAUSE_PEER
from gateway.downstream.headers import decimal
from gateway.plugins import run_header_filter
from gateway.proxy.exchange_base import DONE, RESPONDED, RESPONDING
from gateway.proxy.response_head import framing, scan_headers, status_line
from gateway.proxy.stream_tries import StreamTries
from gateway.proxy.websocket import UPGRADE_LINES, start_tunnel, switching_head
from gateway.upstream.connection import UpstreamConnection
from gateway.upstream.failures import Phase, UpstreamFailure
from gateway.upstream.service import pool_name

if TYPE_CHECKING:
    from gateway.upstream.pool import UpstreamPool

__all__ = ["ResponseRelay"]


class ResponseRelay(StreamTries):
    """The upstream connection's events for one exchange (what ``UpstreamConnection.bind`` is given)."""

    __slots__ = ()

    # ================================================================== upstream events
    def on_upstream_head(self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        conn = self.conn
        up = self._up
        now = up.last_read if up is not None else conn.loop.time()  # the head arrived in the upstream's read
        state = self.state
        policy = state.header_policy
        head = self.head
        self.status = status
        self.stage = RESPONDING
        self._head_at = now
        rest, content_type, content_length, has_via, has_server, has_date = scan_headers(headers, head.te, policy.via)
        framing_line, self._chunked_out, keep = framing(
            head.method, status, head.version, content_length, self.keep_alive and not conn.closing
        )
        self.keep_alive = keep
        # the front, then the upstream's headers, then the tail; appended one by one (a ``+=`` of a tuple builds
        # the tuple and goes through the generic sequence concatenation)
        parts = [status_line(status, reason)]
        if not has_date:
            parts.append(state.date.line())
        if content_type is not None:
            parts.append(b"Content-Type: ")
            parts.append(content_type)
            parts.append(b"\r\n")
        if content_length is not None:  # ``framing`` leaves this line to us: pieces of the join below
            parts.append(b"Content-Length: ")
            parts.append(content_length)
            parts.append(b"\r\n")
        else:
            parts.append(framing_line)
        parts.append(b"Connection: keep-alive\r\n" if keep else b"Connection: close\r\n")
        parts.extend(rest)
        pick = policy.tail_values
        tail = policy.response_tails[has_via * 2 + has_server]
        if pick is not None:  # Kong's latency headers (``to_ms``, inline: once per response)
            waited = now - self._sent_at
            before = self._sent_at - self.start
            tail = tail % pick(
                (
                    decimal(status),
                    decimal(int(waited * 1000)) if waited > 0 else b"0",
                    decimal(int(before * 1000)) if before > 0 else b"0",
                    self.request_id.encode(),
                )
            )
        handle = self._handle
        cookie = handle.set_cookie if handle is not None else None  # hash_on = cookie
        plugins = self._plugins
        chain = self._plugin_chain
        if plugins is None or chain is None or not chain.has_header_filter:
            if cookie is None and not self._debug:  # the common case: the upstream's headers between front and tail
                parts.append(tail)
                data = b"".join(parts)
                self._head_bytes = len(data)
                conn.write(data)
                return
            plugins = None
        if cookie is not None:
            parts.append(b"Set-Cookie: " + cookie.encode("latin-1") + b"\r\n")
        if plugins is None and not self._debug:
            parts.append(tail)
        else:
            parts.append(tail[:-2])  # the plugins' (and the debug) headers go before the blank line
            if plugins is not None:
                run_header_filter(plugins)
                for header, text in plugins.response_headers:
                    parts.append(f"{header}: {text}\r\n".encode("latin-1"))
            if self._debug:
                parts.extend(f"{header}: {text}\r\n".encode("latin-1") for header, text in self._debug_headers())
            parts.append(b"\r\n")
        data = b"".join(parts)
        self._head_bytes = len(data)
        conn.write(data)

    def on_upstream_body(self, data: bytes) -> None:
        if not data:
            return
        self.bytes_sent += len(data)
        if self._chunked_out:
            self.conn.write(b"%x\r\n%b\r\n" % (len(data), data))
        else:
            self.conn.write(data)

    def on_upstream_complete(self, keep_alive: bool) -> None:
        up = self._up
        self._up = None
        if self._chunked_out:
            self.conn.write(b"0\r\n\r\n")
        now = 0.0
        if up is not None:
            now = up.last_read  # the read that completed the response (or its EOF): the pool's and the client's clock
            flow = up.flow
            if flow is not None and flow.read_paused:
                up.resume_reading()
            pool = self.state.pool
            saved = pool.release(up, keep_alive and self._body_done and not self._discarding, now)
            if pool.size > 0 and self.state.debug_logging:
                self._debug_pool_release(pool, up, saved)
        self.stage = RESPONDED
        if not self._body_done:
            # the upstream answered before the whole body arrived: read and drop the rest (and read at all: the
            # client was paused for the upstream's backpressure, which no longer exists)
            self._discarding = True
            self.conn.flow.resume_reading(PAUSE_PEER)
        self._maybe_finish(now)

    def on_upstream_trailers(self, trailers: list[tuple[bytes, bytes]]) -> None:
        """HTTP/2 trailers (gRPC's ``grpc-status``/``grpc-message``): relayed to an HTTP/2 client as its stream's
        trailing HEADERS (``H2Stream.send_trailers``); an HTTP/1.1 client gets none (docs/compatibility.md)."""
        send = getattr(self.conn, "send_trailers", None)
        if send is not None and self.stage == RESPONDING:
            send(trailers)

    def on_upstream_trailing(self, text: str) -> None:
        """Bytes followed the complete response: the connection is closed, not pooled (nginx warns)."""
        conn = self.conn
        self.state.error_log.log(
            "warn", f"{text} while {Phase.READING_BODY.value}", conn.conn_id, self._context(self._upstream_label())
        )

    def on_upstream_error(self, failure: UpstreamFailure) -> None:
        up = self._up
        self._up = None
        reused = up is not None and up.reused and not up.got_bytes
        if up is not None:
            up.abort()
        failure = self._place(failure)
        if self.stage >= RESPONDING:
            self.state.error_log.log(
                failure.level, failure.text(), self.conn.conn_id, self._context(self._upstream_label())
            )
            self.stage = RESPONDED
            self.keep_alive = False
            self._close_after = True
            self.stage = DONE
            if self._handle is not None:
                self._balancer_log()
            self.conn.exchange_finished(self, abort=True)
            return
        self._failed(failure, reused=reused)

    def on_upstream_upgrade(self, reason: bytes, headers: list[tuple[bytes, bytes]]) -> bool:
        """A 101 from the upstream: relayed when the request asked for a WebSocket upgrade (``proxy.websocket``)."""
        if not self._upstream_head.startswith(UPGRADE_LINES):
            return False
        conn = self.conn
        now = conn.loop.time()
        self.status = 101
        self.stage = RESPONDING
        self._head_at = now
        data = switching_head(self, reason, headers, now)
        self._head_bytes = len(data)
        conn.write(data)
        return True

    def on_upstream_switched(self, transport: asyncio.Transport, rest: bytes) -> None:
        start_tunnel(self, transport, rest)

    def on_upstream_pause_writing(self) -> None:
        self.conn.flow.pause_reading(PAUSE_PEER)

    def on_upstream_resume_writing(self) -> None:
        self.conn.flow.resume_reading(PAUSE_PEER)

    # ================================================================== downstream flow control
    def on_client_pause_writing(self) -> None:
        self._pause_upstream_reading()

    def on_client_resume_writing(self) -> None:
        up = self._up
        if up is not None:
            up.resume_reading()

    def _debug_pool_release(self, pool: UpstreamPool, up: UpstreamConnection, saved: bool) -> None:
        """Kong's ``keepalive saving / not saving connection`` and ``free connection pool`` debug lines."""
        log = self.state.error_log
        cid = self.conn.conn_id
        name = pool_name(up.key)
        where = f"host: {up.key[0]}:{up.key[1]}, name: {name}"
        if saved:
            log.debug(f"lua balancer: keepalive saving connection {id(up):X}, {where}, {id(pool):X}", cid)
            return
        log.debug(f"lua balancer: keepalive not saving connection {id(up):X}, {where}", cid)
        if pool.idle_count(up.key) == 0:
            log.debug(f'keepalive: free connection pool {id(pool):X} for "{name}"', cid)
