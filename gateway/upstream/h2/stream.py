"""One request on a shared HTTP/2 upstream connection, driven by the exchange like an HTTP/1.1 connection.

Why the same surface: the exchange's tries, retries, timeouts, failure lines and log phase are written against
``UpstreamConnection`` (``bind``, ``send``, ``arm_read_timer``, ``pause_reading``, ``abort``, ``transport.write``).
``H2UpstreamStream`` is that connection for one stream, so a gRPC request takes the very same path through the
exchange as an HTTP/1.1 one, and only the framing differs. Its ``transport`` (``StreamTransport``) takes the request
bytes the exchange writes and hands them to the request translator (``h2.request``).

Rules:

1. Response events become the exchange's ``on_upstream_*`` calls: the final head (1xx heads are not relayed), DATA,
   the trailers (``on_upstream_trailers``), the end; every event moves the read deadline, as a read does.
2. A stream is used once. When its response is complete it is ``closed``: the pool's ``release`` closes it, which
   frees its slot on the connection (and resets it with ``CANCEL`` if the request side had not ended yet).
3. Flow control both ways. Request DATA waits in ``_pending`` for the stream's and the connection's windows; above
   ``PENDING_HIGH`` the exchange is told the upstream cannot take more (``pause_writing``, which also runs the write
   timeout). Response DATA is acknowledged (WINDOW_UPDATE) as it is handed over, unless the exchange paused reading
   (the client is slow): the credit is then held and returned on resume, so the upstream can send at most one window
   ahead of the client.
4. Failures are ``UpstreamFailure`` values, as for HTTP/1.1: RST_STREAM from the upstream is nginx's ``upstream
   rejected request with error <code>`` (502, not retried); the connection's end or GOAWAY reach every stream on it.
"""

from __future__ import annotations

import asyncio
import http
from typing import Any, Final, Protocol

from h2.errors import ErrorCodes

from gateway.downstream.flow import FlowControl
from gateway.upstream.connection import _SPENT_PARSER, UpstreamConnection
from gateway.upstream.failures import Kind, Phase, UpstreamFailure
from gateway.upstream.h2.request import Headers, RequestTranslator

__all__ = ["PENDING_HIGH", "PENDING_LOW", "H2UpstreamStream", "StreamOwner", "StreamTransport"]

#: request bytes held back by flow control above which the client's reading pauses, and below which it resumes
PENDING_HIGH: Final = 64 * 1024
PENDING_LOW: Final = 16 * 1024
_BY_WINDOW: Final = 1
_BY_TRANSPORT: Final = 2


class StreamOwner(Protocol):
    """What a stream uses of its connection (``h2.connection.H2UpstreamConnection``)."""

    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport | None

    def flush(self) -> None: ...
    def send_head(self, stream: H2UpstreamStream, headers: Headers, end: bool) -> bool: ...
    def send_data(self, stream: H2UpstreamStream, pending: list[bytes], end: bool) -> bool: ...
    def acknowledge(self, stream: H2UpstreamStream, n: int) -> None: ...
    def stream_done(self, stream: H2UpstreamStream, reset: ErrorCodes | None) -> None: ...


class StreamTransport(asyncio.Transport):
    """The ``transport`` of an ``H2UpstreamStream``: what the exchange writes and pauses, for one stream."""

    __slots__ = ("_stream",)

    def __init__(self, stream: H2UpstreamStream) -> None:
        super().__init__()
        self._stream = stream

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._stream.feed_request(bytes(data))

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self._stream.feed_request(bytes(data))

    def is_closing(self) -> bool:
        return self._stream.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """The connection's: ``tls`` (the upstream TLS results, for metrics and the trace), ``peername``..."""
        transport = self._stream.owner.transport
        return transport.get_extra_info(name, default) if transport is not None else default

    def pause_reading(self) -> None:
        self._stream.hold_credit()

    def resume_reading(self) -> None:
        self._stream.return_credit()

    def is_reading(self) -> bool:
        return not self._stream.credit_held

    def close(self) -> None:
        self._stream.close()

    def abort(self) -> None:
        self._stream.abort()


class H2UpstreamStream(UpstreamConnection):
    """One stream of an ``H2UpstreamConnection``, shaped as the exchange's upstream connection."""

    __slots__ = (
        "_acks_held",
        "_local_ended",
        "_pending",
        "_pending_bytes",
        "_released",
        "_remote_ended",
        "_request",
        "_write_paused",
        "credit_held",
        "end_wanted",
        "owner",
        "stream_id",
    )

    def __init__(self, owner: StreamOwner, key: Any, reused: bool, scheme: bytes) -> None:
        super().__init__(owner.loop, None, key)
        self.parser = _SPENT_PARSER  # no HTTP/1.1 response to parse: the h2 machine reports events
        self.owner = owner
        self.reused = reused
        #: 0 until the HEADERS went out (ids are taken in the order heads are sent, as RFC 9113 5.1.1 requires)
        self.stream_id = 0
        self.transport = StreamTransport(self)
        self.flow = FlowControl(self.transport)
        self._request = RequestTranslator(scheme, self._send_head, self._queue_data, self._request_end)
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._write_paused = 0  # a bit per cause: _BY_WINDOW, _BY_TRANSPORT
        self._acks_held = 0
        self._local_ended = False
        self._remote_ended = False
        self._released = False
        #: the request's end was asked for and goes out with (or after) the last pending DATA
        self.end_wanted = False
        self.credit_held = False

    # ================================================================== request side (from the exchange)
    def feed_request(self, data: bytes) -> None:
        if self.closed:
            return
        self._request.feed(data)
        if self._request.failed:  # the exchange wrote something llhttp refuses: a bug, still answered (502)
            self.fail_soon(UpstreamFailure(Kind.BUG, Phase.SENDING, 0, "request not translatable to HTTP/2"))
            return
        self.owner.flush()

    def fail_soon(self, failure: UpstreamFailure) -> None:
        """Fail from the loop, not inside the exchange's own write (which expects to return to a bound stream)."""
        self.loop.call_soon(self._fail, failure)

    def send(self, data: bytes) -> None:
        """Request body bytes (framed as the exchange frames them for HTTP/1.1): translated, then sent."""
        self.feed_request(data)

    def _send_head(self, headers: Headers, end: bool) -> None:
        if not self.owner.send_head(self, headers, end):
            return
        if end:
            self._local_ended = True

    def _queue_data(self, data: bytes) -> None:
        self._pending.append(data)
        self._pending_bytes += len(data)
        self.push()

    def _request_end(self) -> None:
        self.end_wanted = True
        self.push()

    def push(self) -> None:
        """Send what the windows allow (rule 3); the connection calls it again when a window opens."""
        if self.closed or not self.stream_id or self._local_ended:
            return
        sent_all = self.owner.send_data(self, self._pending, self.end_wanted)
        self._pending_bytes = sum(len(chunk) for chunk in self._pending) if self._pending else 0
        if sent_all and self.end_wanted:
            self._local_ended = True
        if not self._write_paused & _BY_WINDOW and self._pending_bytes > PENDING_HIGH:
            self._writing_paused(_BY_WINDOW, True)
        elif self._write_paused & _BY_WINDOW and self._pending_bytes < PENDING_LOW:
            self._writing_paused(_BY_WINDOW, False)

    def transport_paused(self, paused: bool) -> None:
        """The connection's socket buffer is full (or drained): every stream on it waits."""
        self._writing_paused(_BY_TRANSPORT, paused)

    def _writing_paused(self, cause: int, paused: bool) -> None:
        """One pause of the request side for its causes (the stream's window, the shared socket): the exchange hears
        of the first pause and of the last resume only, so the write timeout runs once."""
        before = self._write_paused
        after = before | cause if paused else before & ~cause
        self._write_paused = after
        if not before and after:
            self.pause_writing()
        elif before and not after:
            self.resume_writing()

    # ================================================================== response side (from the connection)
    def _progress(self) -> None:
        """A frame of the response arrived: its time is the stream's last read (the relay takes the head's arrival
        from it, as from an HTTP/1.1 connection's read), and the read timeout starts again."""
        self.got_bytes = True
        now = self.last_read = self.loop.time()
        if self._read_deadline:
            self._read_deadline = now + self.read_timeout

    def on_response(self, headers: Headers) -> None:
        """The response head (rule 1); a trailers-only gRPC answer ends the stream with it (``on_end`` follows)."""
        exchange = self.exchange
        if exchange is None:
            return
        self._progress()
        status = 0
        fields: Headers = []
        for name, value in headers:
            if name == b":status":
                status = int(value)
            elif name[:1] != b":":
                fields.append((name, value))
        if status < 200:
            return  # interim responses are not forwarded
        self.response_started = True
        exchange.on_upstream_head(status, _reason(status), fields)

    def on_data(self, data: bytes, flow_length: int) -> None:
        exchange = self.exchange
        self._progress()
        if exchange is not None and data:
            exchange.on_upstream_body(data)
        if flow_length:
            if self.credit_held and not self.closed:
                self._acks_held += flow_length
            else:
                self.owner.acknowledge(self, flow_length)

    def on_trailers(self, headers: Headers) -> None:
        exchange = self.exchange
        self._progress()
        if exchange is not None:
            exchange.on_upstream_trailers([(name, value) for name, value in headers if name[:1] != b":"])
        self.on_end()

    def on_end(self) -> None:
        """The upstream ended the stream: the response is complete (rule 2)."""
        self._remote_ended = True
        exchange = self.exchange
        if exchange is None:
            return
        self.exchange = None
        self.closed = True  # used once: the pool's release closes it, which frees the slot
        self.last_read = self.loop.time()  # the end of the stream may come in a frame of its own
        exchange.on_upstream_complete(True)

    def on_reset(self, code: int) -> None:
        """RST_STREAM from the upstream (rule 4)."""
        self._local_ended = self._remote_ended = True
        text = f"upstream rejected request with error {code}"
        self._fail(UpstreamFailure(Kind.INVALID, Phase.READING_HEADER, 0, text))

    def on_lost(self, failure: UpstreamFailure) -> None:
        """The connection ended, or GOAWAY left this stream unprocessed (rule 4)."""
        self._local_ended = self._remote_ended = True
        self._fail(failure)

    def _fail(self, failure: UpstreamFailure) -> None:
        exchange = self.exchange
        self.exchange = None
        self.abort()
        if exchange is not None:
            exchange.on_upstream_error(failure)
        elif self.ended is None:
            self.ended = failure

    # ================================================================== flow control (rule 3)
    def hold_credit(self) -> None:
        self.credit_held = True

    def return_credit(self) -> None:
        self.credit_held = False
        held = self._acks_held
        if held:
            self._acks_held = 0
            self.owner.acknowledge(self, held)
            self.owner.flush()

    # ================================================================== ending
    def detach(self) -> None:
        """The exchange is done with the stream (the pool's ``release`` then closes it: rule 2)."""
        self.exchange = None
        self._read_deadline = 0.0
        self._skip_body = False  # no HTTP/1.1 parser to reset after a HEAD: the h2 machine ends the stream itself

    def close(self) -> None:
        """Done with the stream (rule 2): reset it if the request side is still open, free its slot."""
        self._finish(ErrorCodes.CANCEL)

    def abort(self) -> None:
        self._finish(ErrorCodes.CANCEL)

    def _finish(self, code: ErrorCodes) -> None:
        self.closed = True
        self._cancel_timers()
        if self._released:
            return
        self._released = True
        self._pending = []
        self._pending_bytes = 0
        self._request.release()
        self.transport = None  # the transport and its flow control point back here: no cycle is left behind
        self.flow = None
        self.owner.stream_done(self, None if self._local_ended and self._remote_ended else code)


def _reason(status: int) -> bytes:
    try:
        return http.HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""
