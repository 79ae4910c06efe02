"""One HTTP/1.1 client connection to an upstream peer, reused through the pool.

Rules:

1. ``UpstreamConnection`` never decides anything: it parses responses with httptools and reports every
   event to its current ``exchange`` (``on_upstream_*``), failures as ``failures.UpstreamFailure`` values.
   When idle (in the pool) any byte or EOF from the peer marks it dead and removes it, so a closed
   connection is never handed out; a connection that ends *before* an exchange is bound to it (the peer
   accepted and closed at once) keeps how it ended in ``ended``, for the exchange to report when it comes.
2. A connection goes back to the pool only when the response's framing leaves it in a known state: the
   response ends where its framing says, and not one byte follows it. A response is therefore completed
   after the whole read that ended it has been parsed (``_completed``), not inside the parser's callback:
   anything the parser meets after the end (the start of another message, garbage, body bytes after a HEAD
   response or beyond ``Content-Length``) marks the connection ``_trailing`` and it is closed, with nginx's
   warning (``upstream sent more data than specified in "Content-Length" header`` / ``upstream sent data
   after final chunk``). A body delimited by the connection's close ends it anyway.
3. One read-timeout timer per connection: a deadline moved forward on every read, a single
   ``call_at`` handle re-armed only when it fires early (lesson 10). The handle outlives the request: the
   next request on the pooled connection moves the deadline instead of cancelling and creating a timer
   (``_read_deadline == 0`` means "not armed"; a handle that fires then is dropped). The pool's idle
   timeout works the same way (``idle_deadline``, see ``pool.py``). The write timeout runs only while
   the transport's buffer is above its high-water mark.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Final, Protocol

import httptools

from gateway.downstream.flow import PAUSE_PEER, FlowControl, TickWrites, flush_nothing, write_pieces
from gateway.tls.upstream.connect import SessionCache
from gateway.upstream.events import UpstreamEvents
from gateway.upstream.failures import Kind, Phase, UpstreamFailure, from_exception

__all__ = ["ConnectionPool", "UpstreamConnection", "UpstreamEvents"]


_NEVER: Final = float("inf")  # ``_read_at`` without a handle


class _NoCallbacks:
    """The protocol of the spent parser: no callbacks, so the parser holds no reference to anything."""


#: what a closed ``UpstreamConnection`` keeps instead of its parser, whose callbacks are the connection's bound
#: methods: dropping it breaks the cycle, so a closed connection and its TLS stack are freed at once instead of
#: waiting for a full collection (``benchmarks/SOAK.md``); never fed, no data arrives after ``connection_lost``
_SPENT_PARSER = httptools.HttpResponseParser(_NoCallbacks())


class ConnectionPool(Protocol):
    """What a connection (and its connector) needs of the pool it belongs to (``pool.UpstreamPool``): to leave it
    when it dies idle, and the TLS sessions cached under the same keys."""

    @property
    def sessions(self) -> SessionCache: ...

    def discard(self, conn: UpstreamConnection) -> None: ...


class UpstreamConnection(asyncio.Protocol):
    """One connection to an upstream peer, reused through the pool."""

    __slots__ = (
        "_completed",
        "_completed_keep",
        "_flush_held",
        "_flush_tick",
        "_headers",
        "_out",
        "_read_at",
        "_read_deadline",
        "_read_handle",
        "_reason",
        "_response_headers",
        "_skip_body",
        "_status",
        "_trailing",
        "_upgraded",
        "_write_handle",
        "clock",
        "closed",
        "ended",
        "exchange",
        "flow",
        "got_bytes",
        "idle_deadline",
        "idle_handle",
        "key",
        "last_read",
        "loop",
        "parser",
        "pool",
        "read_timeout",
        "release_hook",
        "requests",
        "response_started",
        "reused",
        "tick_writes",
        "transport",
        "write_timeout",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        pool: ConnectionPool | None,
        key: Any,
        tick_writes: TickWrites | None = None,
    ) -> None:
        self.loop = loop
        #: ``loop.time`` bound once (see ``HttpConnection.clock``): each response's read reads the clock
        self.clock: Callable[[], float] = loop.time
        self.pool = pool
        self.key = key
        #: where ``send`` holds the request's bytes until the end of the loop's tick (``flow.TickWrites``: the
        #: upstream is woken once for the tick's requests, not once per request); None: written at once
        self.tick_writes = tick_writes
        self._out: list[bytes] | None = None
        self._flush_held = False
        #: ``_flush`` bound once for ``TickWrites.hold``; ``flush_nothing`` once the socket is gone (the cycle broken)
        self._flush_tick: Callable[[], None] = self._flush
        self.transport: asyncio.Transport | None = None
        #: read pausing by reason, as for the downstream side (one object per transport; None until connected)
        self.flow: FlowControl | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.exchange: UpstreamEvents | None = None
        self.closed = False
        self.requests = 0
        self.reused = False
        self.got_bytes = False
        #: the loop time of the latest read: what its handlers use as "now" (the response head's arrival), so that
        #: one read asks the loop's clock once
        self.last_read = 0.0
        self.response_started = False
        self.idle_handle: asyncio.TimerHandle | None = None
        #: when the pool may close this idle connection (0 while it is in use); see ``UpstreamPool.release``
        self.idle_deadline = 0.0
        #: called once by the pool at the first release after a complete response (TLS: store the session)
        self.release_hook: Callable[[UpstreamConnection], None] | None = None
        self.read_timeout = 60.0
        self.write_timeout = 60.0
        self._read_deadline = 0.0
        self._read_handle: asyncio.TimerHandle | None = None
        self._read_at = _NEVER  # when ``_read_handle`` fires (no ``handle.when()`` call per request)
        self._write_handle: asyncio.TimerHandle | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._reason = b""
        self._skip_body = False
        #: the current response's status and headers (read only when it ends abnormally: ``_framing``)
        self._status = 0
        self._response_headers: list[tuple[bytes, bytes]] = []
        #: the exchange whose response ended in the read being parsed; completed once the read is parsed (rule 5)
        self._completed: UpstreamEvents | None = None
        self._completed_keep = False
        self._trailing = False
        #: the exchange that accepted a 101 in the read being parsed: the bytes after the head are its
        self._upgraded: UpstreamEvents | None = None
        #: how the connection ended while no exchange was bound to it (None while open)
        self.ended: UpstreamFailure | None = None

    # ------------------------------------------------------------------ asyncio protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.flow = FlowControl(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._out = None
        self._flush_tick = flush_nothing
        self._cancel_timers()
        exchange = self.exchange
        if exchange is None:
            self.ended = from_exception(exc, Phase.READING_HEADER)
            self.parser = _SPENT_PARSER
            if self.pool is not None:
                self.pool.discard(self)
            return
        self.exchange = None
        if self.response_started and self._framing()[1]:
            self.last_read = self.loop.time()  # the EOF is the response's last read (the relay's clock)
            exchange.on_upstream_complete(False)  # EOF ends a body without length or chunking
        else:
            exchange.on_upstream_error(from_exception(exc, Phase.READING_HEADER))
        self.parser = _SPENT_PARSER

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost reports

    def data_received(self, data: bytes) -> None:
        # The check is on a local, not on ``self.exchange``: mypy would take the attribute for not None for the rest
        # of the function, and the compiled code checks that type where it is read (a TypeError in the except clause
        # below, once the response completed within this read and the exchange was let go)
        current = self.exchange
        if current is None:
            # idle connection: the peer closed or sent garbage; it must never be handed out
            self.close()
            return
        self.got_bytes = True
        now = self.last_read = self.clock()
        if self._read_deadline:
            self._read_deadline = now + self.read_timeout
        # what this read produces downstream (head, body, chunk framing) leaves in one write: see HttpConnection.cork
        sink = current.sink
        corked = sink.cork()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            upgraded = self._upgraded  # None: a 101 was refused in on_headers_complete
            if upgraded is not None:
                self._upgraded = None
                self._switch(upgraded, data[exc.args[0] :] if exc.args else b"")
        except httptools.HttpParserError:
            exchange = self.exchange
            if exchange is not None:
                self.exchange = None
                self.abort()
                text = "upstream sent invalid chunked response" if self.response_started and self._framing()[0] else ""
                exchange.on_upstream_error(UpstreamFailure(Kind.INVALID, Phase.READING_HEADER, 0, text))
            elif self._completed is not None:
                self._trailing = True  # garbage after a complete response
        finally:
            completed = self._completed
            if completed is not None:
                self._complete(completed)
            if corked:
                sink.uncork()

    def _switch(self, exchange: UpstreamEvents, rest: bytes) -> None:
        """An accepted 101: the transport leaves this connection for the exchange's tunnel, never to be pooled."""
        if self._out is not None:
            self._flush()  # what the client sent before the switch goes before what the tunnel relays
        self.closed = True
        self._cancel_timers()
        transport = self.transport
        self.transport = None
        self.parser = _SPENT_PARSER
        if transport is not None:
            exchange.on_upstream_switched(transport, rest)

    def _complete(self, exchange: UpstreamEvents) -> None:
        """The response ended in the read just parsed: reusable only if nothing followed it (rule 5)."""
        self._completed = None
        if self._trailing:
            self._trailing = False
            exchange.on_upstream_trailing(
                "upstream sent data after final chunk"
                if self._framing()[0]
                else 'upstream sent more data than specified in "Content-Length" header'
            )
            exchange.on_upstream_complete(False)
            return
        exchange.on_upstream_complete(self._completed_keep)

    def pause_writing(self) -> None:
        if self.exchange is not None:
            self._write_handle = self.loop.call_later(self.write_timeout, self._write_timed_out)
            self.exchange.on_upstream_pause_writing()

    def resume_writing(self) -> None:
        if self._write_handle is not None:
            self._write_handle.cancel()
            self._write_handle = None
        if self.exchange is not None:
            self.exchange.on_upstream_resume_writing()

    # ------------------------------------------------------------------ use by an exchange
    def bind(self, exchange: UpstreamEvents, read_timeout: float, write_timeout: float, skip_body: bool) -> None:
        """Attach to an exchange for one request/response (a pending idle timer just finds it busy)."""
        self.idle_deadline = 0.0
        self._read_deadline = 0.0
        self.exchange = exchange
        self.read_timeout = read_timeout
        self.write_timeout = write_timeout
        self.requests += 1
        self.got_bytes = False
        self.response_started = False
        self._skip_body = skip_body
        self._headers = []
        self._reason = b""

    def send(self, data: bytes) -> None:
        """Write request bytes (body); dropped once the transport is closing (its ``connection_lost`` reports why).
        Behind a head still held for the tick's end (``send_at_tick_end``), they join it, in order.

        Between the transport closing (the peer's EOF, a reset) and ``connection_lost`` reaching the exchange, the
        client may still deliver body bytes: uvloop raises on a write to a closed handle, so they are dropped here.
        """
        self.send_many([data])

    def send_many(self, pieces: list[bytes]) -> None:
        """``send`` of several pieces in order (a head and the body bytes buffered before the connection was up)."""
        transport = self.transport
        if transport is None or self.closed or transport.is_closing():
            return
        out = self._out
        if out is not None:
            out.extend(pieces)
        else:
            write_pieces(transport, pieces)

    def send_at_tick_end(self, data: bytes) -> None:
        """A request head without body bytes: held until the end of the loop's tick (``tick_writes``), so that the
        upstream is woken once for the tick's requests. A body's bytes go at once (``send``): the transport's
        backpressure must reach the client as it reads the body."""
        if self.tick_writes is None or self._out is not None:
            self.send(data)
            return
        transport = self.transport
        if transport is None or self.closed or transport.is_closing():
            return
        self._out = [data]
        if not self._flush_held:
            self._flush_held = True
            self.tick_writes.hold(self.loop, self._flush_tick)

    def _flush(self) -> None:
        """The held bytes to the socket, in one write (``send``); nothing once closed or closing."""
        self._flush_held = False
        out = self._out
        self._out = None
        transport = self.transport
        if not out or transport is None or self.closed or transport.is_closing():
            return
        write_pieces(transport, out)

    def arm_read_timer(self, now: float) -> None:
        """Start (or keep) the read timeout: called once the request has been fully written, at loop time ``now``
        (the caller's: it has just read the clock)."""
        deadline = self._read_deadline = now + self.read_timeout
        if self._read_at > deadline:  # no handle, or one left by a request with a longer read_timeout
            handle = self._read_handle
            if handle is not None:
                handle.cancel()
            self._read_at = deadline
            self._read_handle = self.loop.call_at(deadline, self._read_timer_fired)

    def _read_timer_fired(self) -> None:
        self._read_handle = None
        self._read_at = _NEVER
        if self.exchange is None or self.closed or not self._read_deadline:
            return  # idle, or the current request is not fully written yet: the next arm creates a handle
        now = self.loop.time()
        if now < self._read_deadline:
            self._read_at = self._read_deadline
            self._read_handle = self.loop.call_at(self._read_deadline, self._read_timer_fired)
            return
        exchange = self.exchange  # not None: checked above, and nothing in between runs other code
        self.exchange = None
        self.abort()
        exchange.on_upstream_error(UpstreamFailure(Kind.TIMEOUT, Phase.READING_HEADER))

    def _write_timed_out(self) -> None:
        self._write_handle = None
        exchange = self.exchange
        if exchange is None:
            return
        self.exchange = None
        self.abort()
        exchange.on_upstream_error(UpstreamFailure(Kind.TIMEOUT, Phase.SENDING))

    def _cancel_timers(self) -> None:
        if self._read_handle is not None:
            self._read_handle.cancel()
            self._read_handle = None
            self._read_at = _NEVER
        if self._write_handle is not None:
            self._write_handle.cancel()
            self._write_handle = None
        if self.idle_handle is not None:
            self.idle_handle.cancel()
            self.idle_handle = None

    def detach(self) -> None:
        """The exchange is done with this connection (it goes back to the pool or is closed).

        The read timer stays (disarmed): cancelling and re-creating it per request costs more than letting a
        stale handle fire once and find nothing to do.
        """
        self.exchange = None
        self._read_deadline = 0.0
        if self._write_handle is not None:
            self._write_handle.cancel()
            self._write_handle = None
        if self._skip_body:
            # a HEAD response left the parser expecting a body that never comes: start afresh
            self.parser = httptools.HttpResponseParser(self)
            self._skip_body = False

    @property
    def read_paused(self) -> bool:
        """Whether reading is paused for any reason (the flow-control object holds the state, not the caller)."""
        flow = self.flow
        return flow is not None and flow.read_paused

    def pause_reading(self, reason: int = PAUSE_PEER) -> None:
        """Pause reading for ``reason`` (default: the client cannot take more of the response)."""
        flow = self.flow
        if flow is not None and not self.closed:
            flow.pause_reading(reason)

    def resume_reading(self, reason: int = PAUSE_PEER) -> None:
        """Clear ``reason``; reading resumes once no reason is left."""
        flow = self.flow
        if flow is not None and not self.closed:
            flow.resume_reading(reason)

    def close(self) -> None:
        if self._out is not None:
            self._flush()  # held bytes go before the close, as a transport's buffered ones do
        self.closed = True
        self._cancel_timers()
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self._out = None
        self.closed = True
        self._cancel_timers()
        if self.transport is not None:
            self.transport.abort()

    # ------------------------------------------------------------------ httptools callbacks
    def on_message_begin(self) -> None:
        if self._completed is not None:
            self._trailing = True  # another message after the complete one, in the same read

    def on_status(self, reason: bytes) -> None:
        self._reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        parser = self.parser
        status = parser.get_status_code()
        exchange = self.exchange
        if exchange is None:
            return
        if 100 <= status < 200:
            headers, reason = self._headers, self._reason
            self._headers = []
            self._reason = b""
            if status == 101:
                self.exchange = None
                if exchange.on_upstream_upgrade(reason, headers):  # a WebSocket upgrade the request asked for
                    self._upgraded = exchange
                    return
                self.abort()  # to a request that did not ask: nginx refuses it
                text = 'upstream sent "101 Switching Protocols" response to a non-upgrade request'
                exchange.on_upstream_error(UpstreamFailure(Kind.INVALID, Phase.READING_HEADER, 0, text))
            return  # interim responses are not forwarded
        self.response_started = True
        self._status = status
        headers = self._response_headers = self._headers
        self._headers = []
        exchange.on_upstream_head(status, self._reason, headers)
        if self._skip_body and self.exchange is not None:
            # HEAD: no body follows whatever the headers say; the response ends here (rule 5)
            self._completed = self.exchange
            self._completed_keep = parser.should_keep_alive()
            self.exchange = None

    def _framing(self) -> tuple[bool, bool]:
        """(chunked, delimited by the close) for the current response, from its head.

        Asked only when a response ends otherwise than by its framing (the peer's close, a parse error, bytes after
        it): llhttp frames the body itself, so a response that ends normally never needs it.
        """
        chunked = has_length = False
        for name, value in self._response_headers:
            lowered = name.lower()
            if lowered == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif lowered == b"content-length":
                has_length = True
        close_delimited = not (chunked or has_length or self._skip_body or self._status in (204, 304))
        return chunked, close_delimited

    def on_body(self, body: bytes) -> None:
        exchange = self.exchange
        if exchange is not None and self.response_started:
            exchange.on_upstream_body(body)
        elif self._completed is not None:
            self._trailing = True  # a body after a HEAD response's head

    def on_message_complete(self) -> None:
        exchange = self.exchange
        if exchange is None or not self.response_started:
            return
        self.exchange = None
        self._completed = exchange
        self._completed_keep = self.parser.should_keep_alive()
