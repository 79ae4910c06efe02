"""One HTTP/2 stream as the exchange's connection: the same contract an HTTP/1.1 connection gives a request.

The exchange (``proxy.exchange.Exchange``) is written against its connection's attributes and a few calls
(``write``, ``cork``/``uncork``, ``flow``, ``host_var``, ``exchange_finished``); ``H2Stream`` offers exactly those,
per stream, so that every h2 request runs the very exchange an HTTP/1.1 request runs: router, plugins (the
connection's ``plugin_cache`` is shared by its streams, so mtls-auth's verdict on the client certificate, which
belongs to the connection, is computed once), pooled HTTP/1.1 upstream connections, Kong's responses and log lines.

Output: ``write`` feeds the response translator (``http2.response``); its DATA goes out within the stream's and the
connection's flow-control windows. What the windows hold back waits in ``_pending``; above ``PENDING_HIGH`` the
exchange is told the client is not reading (``on_client_pause_writing``: the upstream connection stops reading),
and below ``PENDING_LOW`` again that it is.

Trailers: a proxied HTTP/2 upstream's trailers (gRPC's ``grpc-status``/``grpc-message``) arrive through
``send_trailers``; they go out as the stream's last HEADERS frame, carrying END_STREAM, after all the DATA.

Input: body bytes go to ``feed_body``; the window is reopened (WINDOW_UPDATE) as they are handed over, unless the
exchange paused reading (its upstream cannot take more, or it buffers before connecting): then the credit is held
and returned on resume, so a client can send at most one window ahead of what the upstream accepted.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Protocol, cast

from h2.errors import ErrorCodes
from h2.exceptions import ProtocolError, StreamClosedError

from gateway.downstream.client import ClientSide
from gateway.downstream.exchange import DownstreamExchange
from gateway.downstream.flow import FlowControl
from gateway.downstream.http2.response import HOP_BY_HOP, Headers, ResponseTranslator

if TYPE_CHECKING:
    from h2.connection import H2Connection as H2Machine

    from gateway.downstream.request import HeadLimits, RequestHead
    from gateway.downstream.shared import SharedState

__all__ = ["PENDING_HIGH", "PENDING_LOW", "SEND_TIMEOUT", "H2Stream", "StreamOwner"]

#: nginx's ``send_timeout`` default: how long a stream's output may wait for the client to open its window
SEND_TIMEOUT = 60.0
_NO_TIMER, _BODY_TIMER, _SEND_TIMER = 0, 1, 2

#: bytes of response held back by flow control above which the upstream stops being read, and below which it resumes
PENDING_HIGH = 64 * 1024
PENDING_LOW = 16 * 1024


class StreamOwner(Protocol):
    """What a stream uses of its connection (``http2.connection.H2Connection``)."""

    state: SharedState
    loop: asyncio.AbstractEventLoop
    limits: HeadLimits
    h2: H2Machine
    conn_id: int
    remote_addr: str
    peer_ip: str
    peer_trusted: bool
    local_port: int
    https: bool
    tls: object | None
    sni: str | None
    plugin_cache: dict[object, object] | None
    closing: bool
    write_paused: bool

    def flush(self) -> None: ...
    def cork(self) -> bool: ...
    def uncork(self) -> None: ...
    def host_var(self, host: str | None) -> str: ...
    def log_access(self, ex: DownstreamExchange) -> None: ...
    def stream_closed(self, stream: H2Stream) -> None: ...
    def stream_deadline(self, when: float) -> None: ...
    def push_later(self, stream: H2Stream) -> None: ...


class H2Stream(ClientSide):
    """One request stream of an ``H2Connection``, shaped as the exchange's connection."""

    __slots__ = (
        "_acks_held",
        "_body_timeout",
        "_end_wanted",
        "_head",
        "_pending",
        "_pending_bytes",
        "_read_paused",
        "_timer",
        "_trailers",
        "_translator",
        "_write_paused",
        "conn",
        "deadline",
        "exchange",
        "finished",
        "output_done",
        "remote_ended",
        "stream_id",
    )

    def __init__(self, conn: StreamOwner, stream_id: int, head: RequestHead, remote_ended: bool) -> None:
        self.conn = conn
        self.stream_id = stream_id
        # what the exchange reads of its connection, copied once (plain attributes cost less than properties)
        self.state = conn.state
        self.loop = conn.loop
        self.clock = conn.loop.time
        self.limits = conn.limits
        self.conn_id = conn.conn_id
        self.remote_addr = conn.remote_addr
        self.peer_ip = conn.peer_ip
        self.peer_trusted = conn.peer_trusted
        self.local_port = conn.local_port
        self.https = conn.https
        self.tls = conn.tls
        self.sni = conn.sni
        #: the connection's dict: one client certificate, one verdict for all its streams
        self.plugin_cache: dict[object, object] | None = conn.plugin_cache
        self.closing = conn.closing
        self.flow = FlowControl(cast(Any, self))
        self.exchange: DownstreamExchange | None = None
        self.remote_ended = remote_ended
        #: the exchange called ``exchange_finished``
        self.finished = False
        #: END_STREAM (or RST_STREAM) sent: nothing more goes out on this stream
        self.output_done = False
        self._translator = ResponseTranslator(self._on_head, self._on_data, self._on_end, head.method == "HEAD")
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._end_wanted = False
        #: trailers to end the stream with instead of an empty END_STREAM (``send_trailers``)
        self._trailers: Headers | None = None
        #: the final head the translator produced and ``push`` has not sent yet
        self._head: Headers | None = None
        self._write_paused = False
        self._read_paused = False
        self._acks_held = 0
        #: the stream's one timer, as data: what runs (``_BODY_TIMER`` while the client sends the body,
        #: ``_SEND_TIMER`` while the client's window holds our output) and until when (0: none); the connection's
        #: handle fires at the earliest of its streams' deadlines
        self._timer = _NO_TIMER
        self._body_timeout = self.state.client_body_timeout
        self.deadline = 0.0
        if not remote_ended:
            self._timer = _BODY_TIMER
            self.deadline = self.loop.time() + self._body_timeout

    # ================================================================== the exchange's connection contract
    def write(self, data: bytes) -> None:
        if self.output_done:
            return
        self._translator.feed(data)
        self.conn.push_later(self)

    def cork(self) -> bool:
        return self.conn.cork()

    def uncork(self) -> None:
        self.conn.uncork()

    def host_var(self, host: str | None) -> str:
        return self.conn.host_var(host)

    def send_trailers(self, trailers: Headers) -> None:
        """The upstream's trailers: sent after the body, ending the stream (names lowercase, connection-specific
        fields dropped as from a head)."""
        if self.output_done:
            return
        self._trailers = [(name.lower(), value) for name, value in trailers if name.lower() not in HOP_BY_HOP]

    def exchange_finished(self, ex: DownstreamExchange, abort: bool) -> None:
        """The exchange is done: log it, end (or reset) the stream, forget it once nothing is left to send."""
        if self.finished:
            return
        self.finished = True
        self.state.connections_writing -= 1
        self.conn.log_access(ex)
        if abort:
            self.reset(ErrorCodes.INTERNAL_ERROR)
        elif not self.output_done:
            self._end_wanted = True  # a close-delimited body ends here (response rule 2)
            self.push()
        self._translator.release()
        self.conn.stream_closed(self)

    def finish_without_exchange(self) -> None:
        """A stream answered without an exchange (a refused head): forgotten once that answer is out."""
        self.finished = True
        self._translator.release()
        self.conn.stream_closed(self)

    # FlowControl's transport: the exchange pauses and resumes reading the client's body through ``flow``
    def pause_reading(self) -> None:
        self._read_paused = True

    def resume_reading(self) -> None:
        self._read_paused = False
        held = self._acks_held
        if held:
            self._acks_held = 0
            self._acknowledge(held)
            self.conn.flush()

    # ================================================================== input (from the connection)
    def body(self, data: bytes, flow_length: int) -> None:
        if self._timer == _BODY_TIMER:
            self.deadline = self.loop.time() + self._body_timeout
        ex = self.exchange
        if ex is not None and not self.finished:
            ex.feed_body(data)
        if flow_length:
            if self._read_paused and not self.finished:
                self._acks_held += flow_length
            else:
                self._acknowledge(flow_length)

    def body_complete(self) -> None:
        self.remote_ended = True
        if self._timer == _BODY_TIMER:
            self._timer = _NO_TIMER
            self.deadline = 0.0
        ex = self.exchange
        if ex is not None and not self.finished:
            ex.body_complete()

    def client_reset(self) -> None:
        """RST_STREAM from the client: the request is abandoned (nginx logs 499 when no response began)."""
        self.output_done = True
        self._abandon(499)

    def _abandon(self, status: int, sent: int | None = None) -> None:
        """The exchange ends without its response: ``status`` in the access log when no response began (``sent``
        bytes then, if given), aborted upstream, nothing more to send."""
        self.remote_ended = True
        self.deadline = 0.0
        ex = self.exchange
        if ex is not None and not self.finished:
            self.finished = True
            self.state.connections_writing -= 1
            started = ex.response_started  # asked first: an aborted exchange counts as done
            ex.client_aborted()
            if not started:
                ex.status = status
                if sent is not None:
                    ex.bytes_sent = sent
            self.conn.log_access(ex)
            self._translator.release()
        self._pending.clear()

    def timed_out(self, now: float) -> None:
        """The stream's deadline passed (``deadline``): nginx's ``client_body_timeout`` (408, no answer) or
        ``send_timeout`` (the client's window stayed shut: ``info`` line, the stream reset)."""
        if self._timer == _BODY_TIMER:
            self.reset(ErrorCodes.CANCEL)
            self._abandon(408, 0)
        else:
            log = self.state.error_log
            if log.info_enabled:
                log.info(
                    "client timed out (110: Connection timed out) while sending to client, "
                    f"client: {self.peer_ip}, server: kong",
                    self.conn_id,
                )
            self.reset(ErrorCodes.INTERNAL_ERROR)
            self._abandon(499)
        self.conn.stream_closed(self)

    def window_opened(self) -> None:
        if self._head is None and (self._pending or self._end_wanted):
            self._send_pending()

    def set_write_paused(self, paused: bool) -> None:
        """The connection's transport paused or resumed writing: the same signal as an HTTP/1.1 client's."""
        ex = self.exchange
        if ex is None or self.finished:
            return
        if paused:
            ex.on_client_pause_writing()
        elif not self._write_paused:
            ex.on_client_resume_writing()

    def reset(self, code: ErrorCodes) -> None:
        if self.output_done:
            return
        self.output_done = True
        self._pending.clear()
        try:
            self.conn.h2.reset_stream(self.stream_id, code)
        except (StreamClosedError, ProtocolError):
            pass
        self.conn.flush()

    # ================================================================== output (from the translator)
    def push(self) -> None:
        """Send what the translator produced since the last push: the head (with END_STREAM when nothing follows
        it), then the body within the windows, its last DATA frame carrying END_STREAM. Pushing once per cork
        (``H2Connection.push_later``) makes the usual response two frames, or one."""
        head = self._head
        if head is not None:
            self._head = None
            end = self._end_wanted and not self._pending and self._trailers is None
            try:
                self.conn.h2.send_headers(self.stream_id, head, end_stream=end)
            except (StreamClosedError, ProtocolError):
                self.output_done = True
                return
            if end:
                self._output_ended()
                return
        if self._pending or self._end_wanted:
            self._send_pending()

    def _on_head(self, headers: Headers, informational: bool, end: bool) -> None:
        if informational:  # 100 Continue: at once, before the final head
            try:
                self.conn.h2.send_headers(self.stream_id, headers)
            except (StreamClosedError, ProtocolError):
                self.output_done = True
            return
        self._head = headers
        if end:
            self._end_wanted = True

    def _on_data(self, data: bytes) -> None:
        self._pending.append(data)
        self._pending_bytes += len(data)

    def _on_end(self) -> None:
        self._end_wanted = True

    def _send_pending(self) -> None:
        """Send what the windows allow; end the stream once everything is out and the end was asked for."""
        if self.output_done:
            return
        h2 = self.conn.h2
        sid = self.stream_id
        pending = self._pending
        sent = False
        try:
            while pending:
                window = min(h2.local_flow_control_window(sid), h2.max_outbound_frame_size)
                if window <= 0:
                    break
                chunk = pending[0]
                if len(chunk) > window:
                    pending[0] = chunk[window:]
                    chunk = chunk[:window]
                else:
                    pending.pop(0)
                self._pending_bytes -= len(chunk)
                if not pending and self._end_wanted and self._trailers is None:  # the last frame carries END_STREAM
                    h2.send_data(sid, chunk, end_stream=True)
                    self._output_ended()
                    return
                h2.send_data(sid, chunk)
                sent = True
            if not pending and self._end_wanted:
                trailers = self._trailers
                if trailers is not None:
                    self._trailers = None
                    h2.send_headers(sid, trailers, end_stream=True)
                else:
                    h2.end_stream(sid)
                self._output_ended()
        except (StreamClosedError, ProtocolError):
            self.output_done = True
            pending.clear()
            return
        if pending:  # the window holds the rest: the send timer runs from the last progress
            if self._timer != _SEND_TIMER or sent:
                self._timer = _SEND_TIMER
                self.deadline = self.loop.time() + SEND_TIMEOUT
                self.conn.stream_deadline(self.deadline)
        elif self._timer == _SEND_TIMER:
            self._timer = _NO_TIMER
            self.deadline = 0.0
        self._backpressure()

    def _backpressure(self) -> None:
        ex = self.exchange
        if ex is None or self.finished:
            return
        if not self._write_paused and self._pending_bytes > PENDING_HIGH:
            self._write_paused = True
            self.flow.write_paused = True
            ex.on_client_pause_writing()
        elif self._write_paused and self._pending_bytes < PENDING_LOW:
            self._write_paused = False
            self.flow.write_paused = self.conn.write_paused
            ex.on_client_resume_writing()

    def _output_ended(self) -> None:
        self.output_done = True
        if not self.remote_ended:
            # the response is complete while the client still sends: RFC 9113 8.1, stop it without an error; the
            # exchange, which drops the rest of a body it no longer needs, learns that no more is coming
            try:
                self.conn.h2.reset_stream(self.stream_id, ErrorCodes.NO_ERROR)
            except (StreamClosedError, ProtocolError):
                pass
            self.body_complete()
        if self.finished:
            self.conn.stream_closed(self)

    def _acknowledge(self, n: int) -> None:
        try:
            self.conn.h2.acknowledge_received_data(n, self.stream_id)
        except (StreamClosedError, ProtocolError):
            pass
