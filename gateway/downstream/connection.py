"""The downstream connection logic shared by both parsers: request queue, timers, limits, counters, logs.

Theory of operation. A parser-specific subclass (``http1.py``) turns bytes into five calls: ``_message_begin``,
``_head_complete(head)``, ``_body(data)``, ``_message_complete()`` and ``_reject(status, reason)``. Everything else
lives here, once, so the two parser classes cannot drift (lesson 8).

Rules:

1. Pipelining: each parsed head becomes an ``Exchange``. The first one runs; later ones wait in a
   queue, buffering their (small) bodies. Responses go out strictly in request order. When
   ``MAX_PIPELINE`` requests wait, reading pauses (``PAUSE_PIPELINE``) and resumes at half.
2. Keep-alive: HTTP/1.1 unless ``Connection: close``; HTTP/1.0 only with ``Connection: keep-alive``
   (decided by the parser). A response that must be close-delimited, a parse error, a shutdown or a
   client that waits for ``100 Continue`` we never sent ends the connection after the response.
3. One timer handle per connection (lesson 10) with a deadline and a mode: waiting for the first byte
   of a request (``keepalive_timeout``, or ``client_header_timeout`` for a fresh connection), reading a
   head (``client_header_timeout`` from its first byte), reading a body (``client_body_timeout``
   between two reads). While the upstream works, no client timer runs. The handle is re-armed only
   when it fires before the (moved) deadline.
4. A header with an invalid name (``request.check_head``) is dropped and the request goes on, with nginx's
   ``info`` line (``rejects.log_dropped_headers``). Malformed input gets nginx's answer (``rejects``) and the
   connection is closed after it. Head and body timeouts close silently (a body timeout is logged 408).
5. Counters follow nginx's stub_status: reading a request head, with a request in progress, waiting (the rest).
6. Plain HTTP on an ``ssl`` listener (handed over unencrypted, as nginx does when the first byte is not a TLS
   record): malformed input still gets the normal 400, a well-formed request nginx's internal 497 (its built-in
   400 page "The plain HTTP request was sent to HTTPS port"); then the connection is closed.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from gateway.downstream.client import ClientSide
from gateway.downstream.exchange import DownstreamExchange
from gateway.downstream.flow import PAUSE_PIPELINE, FlowControl, flush_nothing, peer_and_port, write_pieces
from gateway.downstream.rejects import PLAIN_HTTP_ON_TLS, log_dropped_headers, reject_response
from gateway.downstream.request import HeadRejected, RequestHead, check_head, host_var, new_request_id
from gateway.downstream.shared import SharedState
from gateway.tls.engine.app_transport import TlsTransport

if TYPE_CHECKING:
    from gateway.settings import Listener

__all__ = ["MAX_PIPELINE", "HttpConnection"]

MAX_PIPELINE: Final = 32

_IDLE: Final = 0  # the parse phase (``_phase``): no request, its head, its body
_HEAD: Final = 1
_BODY: Final = 2
_T_NONE: Final = 0  # what the one timer is for (``_timer_mode``)
_T_KEEPALIVE: Final = 1
_T_HEAD: Final = 2
_T_BODY: Final = 3
_NEVER: Final = float("inf")  # ``_timer_at`` without a handle
#: seconds a connection that has not sent its first request yet still gets once the process stops (its request may
#: be on the wire: the client connected just before the stop); a keepalive connection between requests is closed
#: at once, as nginx closes idle connections on a graceful shutdown
FIRST_REQUEST_GRACE = 1.0


class HttpConnection(ClientSide):
    """Base protocol: one per downstream connection. Subclasses add the parser and ``data_received``."""

    __slots__ = (
        "_broken",
        "_deadline",
        "_flush_held",
        "_flush_tick",
        "_fresh",
        "_out",
        "_pending_error",
        "_phase",
        "_queue",
        "_reading_counted",
        "_request_began",
        "_timer",
        "_timer_at",
        "_timer_mode",
        "current",
        "listener",
        "parsing",
        "plain_on_tls",
        "transport",
    )

    def __init__(self, state: SharedState, listener: Listener, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.state = state
        self.listener = listener
        # the factory hands its loop down (on CPython 3.11 ``get_running_loop`` is a ``getpid`` system call)
        self.loop = loop if loop is not None else asyncio.get_running_loop()
        self.clock = self.loop.time  # bound once: a method call on the loop looks its name up each time
        self.limits = state.head_limits
        self.transport: asyncio.Transport | None = None
        self.flow: FlowControl = None  # type: ignore[assignment]  # set in connection_made
        self.conn_id = 0
        self.peer_ip = ""
        self.remote_addr = ""
        self.peer_trusted = False
        self.local_port = listener.port
        self.https = False
        self.plain_on_tls = False
        #: per-connection plugin verdicts (mtls-auth's chain verification), created on first use
        self.plugin_cache: dict[object, object] | None = None
        self.tls: object | None = None
        self.sni: str | None = None
        self.current: DownstreamExchange | None = None
        self.parsing: DownstreamExchange | None = None
        self._queue: deque[DownstreamExchange] = deque()
        self._phase = _IDLE
        self._fresh = True  # no request begun yet on this connection
        self._reading_counted = False
        self._broken = False
        self._pending_error: tuple[int, str, RequestHead | None] | None = None
        self.closing = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = _NEVER  # when ``_timer`` fires: kept, so that no request calls ``handle.when()``
        self._timer_mode = _T_NONE
        self._deadline = 0.0
        self._request_began = 0.0  # the loop's time of the current request's first byte (its exchange's start)
        #: writes held while corked (``cork``/``uncork``) and until the tick's flush, else None; ``_flush_held``:
        #: ``_flush`` is registered with the tick's writes (``flow.TickWrites``)
        self._out: list[bytes] | None = None
        self._flush_held = False
        #: ``_flush`` bound once for ``TickWrites.hold``; ``flush_nothing`` once the socket is gone (the cycle broken)
        self._flush_tick: Callable[[], None] = self._flush

    # ================================================================== asyncio protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.flow = FlowControl(transport)
        self.peer_ip, self.local_port = peer_and_port(transport, self.local_port)
        self.remote_addr = self.peer_ip
        tls = transport.get_extra_info("tls")
        self.tls = tls
        self.https = tls is not None
        self.plain_on_tls = self.listener.ssl and tls is None
        self.sni = getattr(tls, "sni", None) if tls is not None else None
        state = self.state
        self.peer_trusted = state.is_trusted(self.peer_ip)
        self.conn_id = state.register(self)
        timeout = state.client_header_timeout
        if self.closing:  # accepted as the process stops: serve the request already on its way, if it comes soon
            timeout = min(timeout, FIRST_REQUEST_GRACE)
        self._set_deadline(self.loop.time() + timeout, _T_KEEPALIVE)

    def connection_lost(self, exc: Exception | None) -> None:
        self._broken = True
        self._flush_tick = flush_nothing
        self._cancel_timer()
        if self._reading_counted:
            self._reading_counted = False
            self.state.connections_reading -= 1
        current = self.current
        self.current = None
        if current is not None:
            self.state.connections_writing -= 1
            started = current.response_started  # asked first: the abort marks the exchange done
            current.client_aborted()
            if not started:  # nginx: 499, the client closed the request
                current.status = 499
            self._log_access(current)
        for ex in self._queue:
            ex.client_aborted()
        self._queue.clear()
        self.parsing = None
        self.state.unregister(self)

    def pause_writing(self) -> None:
        self.flow.write_paused = True
        if self.current is not None:
            self.current.on_client_pause_writing()

    def resume_writing(self) -> None:
        self.flow.write_paused = False
        if self.current is not None:
            self.current.on_client_resume_writing()

    def eof_received(self) -> bool | None:
        # a half-closed client may still read the responses to what it sent (pipelining clients do)
        return bool(self.current is not None or self._queue)

    # ================================================================== output
    def write(self, data: bytes) -> None:
        out = self._out
        if out is not None:
            out.append(data)
            return
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    def cork(self) -> bool:
        """Hold writes until ``uncork``: True if this call corked (the caller must uncork), False if already corked
        or held for the tick's flush. The upstream side corks around one ``data_received``: a response head and the
        body bytes that came with it leave in one TLS encryption and one socket write (each a syscall)."""
        if self._out is not None:
            return False
        self._out = []
        return True

    def uncork(self) -> None:
        """What was held leaves at the end of the loop's tick (``flow.TickWrites``), in order, in one write with
        what the tick adds; ``_close`` writes it first if the connection closes before."""
        if not self._out:
            self._out = None
        elif not self._flush_held:
            self._flush_held = True
            self.state.tick_writes.hold(self.loop, self._flush_tick)

    def _flush(self) -> None:
        out, self._out, self._flush_held = self._out, None, False
        if out:
            transport = self.transport
            if transport is not None and not transport.is_closing():
                write_pieces(transport, out)

    def host_var(self, host: str | None) -> str:
        """nginx ``$host``: the Host header lowercased without its port, else the server name."""
        return host_var(host)

    # ================================================================== parser events (from subclasses)
    def _message_begin(self) -> None:
        if self._phase == _HEAD:
            return
        self._fresh = False
        self._phase = _HEAD
        if not self._reading_counted:
            self._reading_counted = True
            self.state.connections_reading += 1
        now = self._request_began = self.clock()
        when = now + self.state.client_header_timeout
        if self._timer_at > when:
            self._set_deadline(when, _T_HEAD)
        else:  # ``_set_deadline``'s common case, without the call
            self._timer_mode, self._deadline = _T_HEAD, when

    def _head_complete(self, head: RequestHead, raw_lengths: list[int] | None = None) -> None:
        if self._reading_counted:
            self._reading_counted = False
            self.state.connections_reading -= 1
        try:
            check_head(head, self.limits, raw_lengths)
        except HeadRejected as exc:
            if head.dropped is not None:
                log_dropped_headers(self.state.error_log, self.peer_ip, self.conn_id, head)
            self._reject(exc.status, exc.reason, head)
            return
        if head.dropped is not None:
            log_dropped_headers(self.state.error_log, self.peer_ip, self.conn_id, head)
        state = self.state
        state.total_requests += 1
        if self.peer_trusted:
            self.remote_addr = state.real_ip(self.peer_ip, head)
        if self.plain_on_tls:
            self._reject(PLAIN_HTTP_ON_TLS, "client sent plain HTTP request to HTTPS port", head)
            return
        ex = self.state.exchange_type(self, head)
        ex.start = self._request_began
        self.parsing = ex
        if head.has_body:
            self._phase = _BODY
            self._set_deadline(self.loop.time() + state.client_body_timeout, _T_BODY)
        else:
            self._phase = _IDLE
            self._timer_mode = _T_NONE
        if self.current is None:
            self.current = ex
            state.connections_writing += 1
            ex.begin()
        else:
            self._queue.append(ex)
            if len(self._queue) >= MAX_PIPELINE:
                self.flow.pause_reading(PAUSE_PIPELINE)

    def _body(self, data: bytes) -> None:
        ex = self.parsing
        if ex is not None:
            self._deadline = self.loop.time() + self.state.client_body_timeout
            ex.feed_body(data)

    def _message_complete(self) -> None:
        ex = self.parsing
        self.parsing = None
        self._phase = _IDLE
        if ex is not None:
            if self._timer_mode == _T_BODY:
                self._timer_mode = _T_NONE
            ex.body_complete()
        if self.current is None and not self._broken:
            self._arm_keepalive()

    def _reject(self, status: int, reason: str, head: RequestHead | None = None) -> None:
        """Malformed or over-limit input: answer ``status`` after the queued responses, then close."""
        if self._broken:
            return
        self._broken = True
        if self._reading_counted:
            self._reading_counted = False
            self.state.connections_reading -= 1
        log = self.state.error_log
        if log.info_enabled:
            log.info(
                f"{reason} while reading client request headers, client: {self.peer_ip}, server: kong", self.conn_id
            )
        self.flow.pause_reading(PAUSE_PIPELINE)
        ex = self.parsing
        if ex is not None and ex is self.current and not ex.response_started:
            # the error is in the body of the request being served
            ex.client_aborted()
            self._write_reject(status, ex.head, ex.request_id)
            self.current = None
            self.state.connections_writing -= 1
            ex.status = 400 if status == 494 else status
            self._log_access(ex)
            self._close()
            return
        if ex is not None and ex is self.current:
            self._close(abort=True)
            return
        if self.current is None:
            self._write_reject(status, head, None)
            self._close()
            return
        self._pending_error = (status, reason, head)

    def _write_reject(self, status: int, head: RequestHead | None, request_id: str | None) -> None:
        """nginx's answer to malformed input (``rejects.reject_response``), and its access-log line when no exchange
        writes one."""
        state = self.state
        rid = request_id or new_request_id()
        data, sent, body_length = reject_response(status, head, rid, state)
        self.write(data)
        if head is not None and request_id is None:
            state.access_log.write(
                self.remote_addr, head.request_line, sent, body_length, head.get("referer"), head.get("user-agent"), rid
            )
        elif head is None:
            state.access_log.write(self.remote_addr, "", sent, body_length, None, None, rid)

    # ================================================================== exchange lifecycle
    def exchange_finished(self, ex: DownstreamExchange, abort: bool) -> None:
        """Called once per exchange when its response is complete and its request fully read."""
        if ex is not self.current:
            return
        self.current = None
        self.state.connections_writing -= 1
        if self.state.access_logging:
            self._log_access(ex)
        if abort:
            self._close(abort=True)
            return
        if not ex.keep_alive or self.closing or (self.parsing is ex and self._phase == _BODY):
            self._close()
            return
        if self._queue:
            nxt = self._queue.popleft()
            if len(self._queue) <= MAX_PIPELINE // 2:
                self.flow.resume_reading(PAUSE_PIPELINE)
            self.current = nxt
            self.state.connections_writing += 1
            nxt.begin()
            return
        if self._pending_error is not None:
            status, _reason, head = self._pending_error
            self._pending_error = None
            self._write_reject(status, head, None)
            self._close()
            return
        if self._phase == _IDLE and not self._broken:
            self._arm_keepalive(ex.finished_at)

    def _log_access(self, ex: DownstreamExchange) -> None:
        log = self.state.access_log
        if not log.enabled:
            return
        head = ex.head
        log.write(
            self.remote_addr,
            head.request_line,
            ex.status,
            ex.bytes_sent,
            head.referer,
            head.user_agent,
            ex.request_id,
        )

    def _close(self, abort: bool = False) -> None:
        self._broken = True
        self._cancel_timer()
        out = self._out
        if out is not None:
            self._out = None
            if abort:
                out = None
        transport = self.transport
        if transport is None:
            return
        if abort:
            transport.abort()
            return
        if out and not transport.is_closing():  # what was written before the close goes out before it
            if type(transport) is TlsTransport:
                # the response's last bytes and the close_notify in one socket write
                transport.close_with(out)
                return
            write_pieces(transport, out)
        transport.close()

    # ================================================================== shutdown
    def shutdown(self) -> None:
        """Graceful stop: idle now, busy after the current response, one still waiting for its first request after
        ``FIRST_REQUEST_GRACE`` at most (its answer then says ``Connection: close``)."""
        self.closing = True
        if self.current is None and self._phase == _IDLE:
            if self._fresh:
                self._set_deadline(self.loop.time() + FIRST_REQUEST_GRACE, _T_KEEPALIVE)
                return
            self._close()
        elif self.current is not None and not self.current.response_started:
            self.current.keep_alive = False

    @property
    def idle(self) -> bool:
        return self.current is None and self._phase == _IDLE

    # ================================================================== the one timer
    def _arm_keepalive(self, now: float = 0.0) -> None:
        """Idle from ``now`` (the loop's time of the read that finished the last exchange; 0.0: read the clock)."""
        state = self.state
        timeout = state.keepalive_timeout
        if timeout <= 0 or self.closing:
            self._close()
            return
        now = now or self.loop.time()
        # The handle fires a head timeout from now at the latest (early, it re-arms), so the next request's head
        # deadline creates no handle: a uvloop timer per request costs more than the rare early wake-up.
        when = now + timeout
        if self._timer_at <= when:  # ``_set_deadline``'s common case, without the call
            self._timer_mode = _T_KEEPALIVE
            self._deadline = when
            return
        self._set_deadline(when, _T_KEEPALIVE, now + min(timeout, state.client_header_timeout))

    def _set_deadline(self, when: float, mode: int, fire_at: float | None = None) -> None:
        """Move the deadline; the one handle is replaced only when it would fire after ``when``. ``fire_at``
        (<= ``when``): where a new handle goes, when an earlier wake-up saves later replacements."""
        self._timer_mode = mode
        self._deadline = when
        if self._timer_at > when:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = at = when if fire_at is None else fire_at
            self._timer = self.loop.call_at(at, self._on_timer)

    def _cancel_timer(self) -> None:
        self._timer_mode = _T_NONE
        if self._timer is not None:
            self._timer.cancel()
            self._timer, self._timer_at = None, _NEVER

    def _on_timer(self) -> None:
        self._timer, self._timer_at = None, _NEVER
        mode = self._timer_mode
        if mode == _T_NONE or self._broken:
            return
        if self.loop.time() < self._deadline:
            self._timer_at = self._deadline
            self._timer = self.loop.call_at(self._deadline, self._on_timer)
            return
        self._timer_mode = _T_NONE
        log = self.state.error_log
        if mode == _T_KEEPALIVE:
            self._close()
        elif mode == _T_HEAD:
            if log.info_enabled:
                log.info(
                    "client timed out (110: Connection timed out) while reading client request headers, "
                    f"client: {self.peer_ip}, server: kong",
                    self.conn_id,
                )
            self._close()
        elif mode == _T_BODY:
            # nginx terminates the request without an answer and without an error-log line; the access log
            # gets 408 with no bytes sent
            ex = self.parsing
            if ex is not None and ex is self.current and not ex.response_started:
                ex.client_aborted()
                ex.status = 408
                ex.bytes_sent = 0
                self.current = None
                self.state.connections_writing -= 1
                self._log_access(ex)
                self._close()
            else:
                self._close(abort=True)
