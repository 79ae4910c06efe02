"""One HTTP/2 client connection to an upstream peer: the socket (TCP or TLS) and the ``h2`` machine of its streams.

Rules:

1. The connection never decides anything about a request: it turns frames into its streams' events
   (``H2UpstreamStream.on_*``) and sends what they ask (HEADERS, DATA within the windows, RST_STREAM).
2. Many streams share it, up to the peer's ``SETTINGS_MAX_CONCURRENT_STREAMS`` (and at most ``STREAM_LIMIT`` of ours),
   and at most the pool's ``max_requests`` over its life (Kong's ``upstream_keepalive_max_requests``).
3. The HTTP/2 preface goes out only once the connector has checked the connection (``start``): a TLS peer that did not
   pick ``h2`` in ALPN never sees an HTTP/2 frame.
4. GOAWAY: the connection leaves the pool and closes. ``h2``'s state machine accepts no frame after a GOAWAY, so the
   streams still on it fail: as a close (nginx's ``upstream prematurely closed connection``; retried where a retry
   is allowed, and gRPC's POST is not once sent), or, for a stream the peer took (id up to ``last_stream_id``) when
   the GOAWAY carries an error code, as ``upstream sent goaway with error <code>``. A protocol error from the peer,
   or the socket's end, fails every stream on it too.
5. The events of one read reach the downstream side corked (``ClientSide.cork``): a trailers-only gRPC answer, or a
   head with its first DATA, leaves in the fewest frames.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, Protocol

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    RemoteSettingsChanged,
    ResponseReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from h2.exceptions import H2Error

from gateway.upstream.failures import Kind, Phase, UpstreamFailure, from_exception
from gateway.upstream.h2.stream import H2UpstreamStream

if TYPE_CHECKING:
    from gateway.downstream.client import ClientSide
    from gateway.tls.upstream.connect import SessionCache
    from gateway.upstream.h2.request import Headers

__all__ = ["STREAM_LIMIT", "H2UpstreamConnection", "StreamPool"]

#: concurrent streams we open on one connection at most, whatever the peer allows (nginx's grpc_pass opens one)
STREAM_LIMIT: Final = 128


class StreamPool(Protocol):
    """What a connection needs of its pool (``h2.pool.H2Pool``)."""

    @property
    def sessions(self) -> SessionCache: ...

    def discard(self, conn: H2UpstreamConnection) -> None: ...

    def idle(self, conn: H2UpstreamConnection) -> None: ...


class H2UpstreamConnection(asyncio.Protocol):
    """One HTTP/2 connection to an upstream peer, shared by its streams."""

    __slots__ = (
        "_early",
        "_started",
        "closed",
        "goaway",
        "h2",
        "idle_deadline",
        "idle_handle",
        "key",
        "loop",
        "max_requests",
        "opened",
        "pool",
        "scheme",
        "session_hook",
        "streams",
        "transport",
        "users",
        "waiters",
    )

    def __init__(
        self, loop: asyncio.AbstractEventLoop, pool: StreamPool, key: tuple[Any, ...], scheme: bytes, max_requests: int
    ) -> None:
        self.loop = loop
        self.pool = pool
        #: ``(protocol, HTTP/1.1-shaped pool key)``: the TLS identity plus the protocol, never an HTTP/1.1 pool key
        self.key = key
        self.scheme = scheme
        self.max_requests = max_requests
        self.h2 = H2Connection(H2Configuration(client_side=True, header_encoding=None))
        self.transport: asyncio.Transport | None = None
        #: streams by id, once their HEADERS went out
        self.streams: dict[int, H2UpstreamStream] = {}
        #: every stream handed out and not yet done (some may not have sent their HEADERS yet)
        self.users: set[H2UpstreamStream] = set()
        self.opened = 0
        self.closed = False
        self.goaway = False
        self.idle_handle: asyncio.TimerHandle | None = None
        self.idle_deadline = 0.0
        #: called once, after the first complete response (TLS: store the session, its tickets have arrived)
        self.session_hook: Callable[[], None] | None = None
        #: while it is being opened: the exchanges waiting for it (``H2Pool.opening``/``settle``)
        self.waiters: list[Callable[[Any], None]] = []
        self._started = False
        self._early: list[bytes] = []

    # ------------------------------------------------------------------ asyncio protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def start(self) -> None:
        """The connector checked the connection: send the preface (rule 3) and read what the peer already sent."""
        self._started = True
        self.h2.initiate_connection()
        self.flush()
        early, self._early = self._early, []
        for data in early:
            self.data_received(data)

    def data_received(self, data: bytes) -> None:
        if not self._started:
            self._early.append(data)
            return
        try:
            events = self.h2.receive_data(data)
        except H2Error as exc:
            self.flush()  # h2 queued its GOAWAY
            self._broken(UpstreamFailure(Kind.INVALID, Phase.READING_HEADER, 0, f"upstream sent invalid http2: {exc}"))
            return
        corked: list[ClientSide] = []
        try:
            for event in events:
                self._dispatch(event, corked)
        finally:
            self.flush()
            for sink in corked:
                sink.uncork()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._cancel_idle()
        self.pool.discard(self)
        failure = from_exception(exc, Phase.READING_HEADER)
        for stream in list(self.users):
            stream.on_lost(failure)

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost reports

    def pause_writing(self) -> None:
        for stream in list(self.users):
            stream.transport_paused(True)

    def resume_writing(self) -> None:
        for stream in list(self.users):
            stream.transport_paused(False)

    # ------------------------------------------------------------------ events (rule 1)
    def _dispatch(self, event: Event, corked: list[ClientSide]) -> None:
        stream_id = getattr(event, "stream_id", 0)
        if stream_id:
            stream = self.streams.get(stream_id)
            if stream is None:
                if isinstance(event, DataReceived) and event.flow_controlled_length:
                    self._ack(stream_id, event.flow_controlled_length)  # a stream we gave up: credit the connection
                return
            exchange = stream.exchange
            if exchange is not None:
                sink = exchange.sink
                if sink not in corked and sink.cork():
                    corked.append(sink)
            self._stream_event(stream, event)
            return
        if isinstance(event, WindowUpdated | RemoteSettingsChanged):
            for user in list(self.users):
                user.push()
        elif isinstance(event, ConnectionTerminated):
            self._goaway(int(event.error_code or 0), event.last_stream_id or 0)

    @staticmethod
    def _stream_event(stream: H2UpstreamStream, event: Event) -> None:
        if isinstance(event, DataReceived):
            stream.on_data(event.data or b"", event.flow_controlled_length or 0)
        elif isinstance(event, ResponseReceived):
            stream.on_response(event.headers or [])
        elif isinstance(event, TrailersReceived):
            stream.on_trailers(event.headers or [])
        elif isinstance(event, StreamEnded):
            stream.on_end()
        elif isinstance(event, StreamReset):
            if event.remote_reset:
                stream.on_reset(int(event.error_code or 0))
        elif isinstance(event, WindowUpdated):
            stream.push()

    def _goaway(self, code: int, last_stream_id: int) -> None:
        """Rule 4: ``h2``'s machine is closed by a GOAWAY, so no stream on it can be answered any more."""
        self.goaway = True
        self.pool.discard(self)
        unprocessed = UpstreamFailure(Kind.CLOSED, Phase.READING_HEADER)
        refused = UpstreamFailure(Kind.INVALID, Phase.READING_HEADER, 0, f"upstream sent goaway with error {code}")
        for stream in list(self.users):
            if code and stream.stream_id and stream.stream_id <= last_stream_id:
                stream.on_lost(refused)
            else:
                stream.on_lost(unprocessed)
        self.close()

    def _broken(self, failure: UpstreamFailure) -> None:
        self.goaway = True
        self.pool.discard(self)
        for stream in list(self.users):
            stream.on_lost(failure)
        self.abort()

    # ------------------------------------------------------------------ streams
    def has_capacity(self) -> bool:
        """Whether a new stream may be opened here now (rule 2)."""
        if self.closed or self.goaway or not self._started:
            return False
        transport = self.transport
        if transport is None or transport.is_closing():
            return False
        if self.max_requests > 0 and self.opened >= self.max_requests:
            return False
        return len(self.users) < min(self.h2.remote_settings.max_concurrent_streams, STREAM_LIMIT)

    def open_stream(self, reused: bool) -> H2UpstreamStream:
        """A new stream for one request; its id is taken when its HEADERS go out."""
        self.idle_deadline = 0.0
        self.opened += 1
        stream = H2UpstreamStream(self, self.key[1], reused, self.scheme)
        self.users.add(stream)
        return stream

    def send_head(self, stream: H2UpstreamStream, headers: Headers, end: bool) -> bool:
        if self.closed or self.goaway:
            stream.fail_soon(UpstreamFailure(Kind.CLOSED, Phase.SENDING))
            return False
        try:
            stream_id = self.h2.get_next_available_stream_id()
            self.h2.send_headers(stream_id, headers, end_stream=end)
        except H2Error as exc:
            stream.fail_soon(UpstreamFailure(Kind.BUG, Phase.SENDING, 0, f"HTTP/2 request refused by h2 ({exc!r})"))
            return False
        stream.stream_id = stream_id
        self.streams[stream_id] = stream
        return True

    def send_data(self, stream: H2UpstreamStream, pending: list[bytes], end: bool) -> bool:
        """Send ``pending`` (consumed in place) within the windows; True when all of it (and the end, if asked) went."""
        h2 = self.h2
        stream_id = stream.stream_id
        try:
            sent_end = False
            while pending:
                window = min(h2.local_flow_control_window(stream_id), h2.max_outbound_frame_size)
                if window <= 0:
                    return False
                chunk = pending[0]
                if len(chunk) > window:
                    pending[0] = chunk[window:]
                    chunk = chunk[:window]
                else:
                    pending.pop(0)
                sent_end = end and not pending
                h2.send_data(stream_id, chunk, end_stream=sent_end)
            if end and not sent_end:
                h2.end_stream(stream_id)
        except H2Error:
            pending.clear()
            stream.fail_soon(UpstreamFailure(Kind.CLOSED, Phase.SENDING))
            return False
        return True

    def acknowledge(self, stream: H2UpstreamStream, n: int) -> None:
        self._ack(stream.stream_id, n)

    def _ack(self, stream_id: int, n: int) -> None:
        try:
            self.h2.acknowledge_received_data(n, stream_id)
        except H2Error:
            pass

    def stream_done(self, stream: H2UpstreamStream, reset: ErrorCodes | None) -> None:
        """A stream is finished with (its response complete, or abandoned): free its slot, reset it if needed."""
        self.users.discard(stream)
        stream_id = stream.stream_id
        if stream_id:
            self.streams.pop(stream_id, None)
            if reset is not None and not self.closed:
                try:
                    self.h2.reset_stream(stream_id, reset)
                except H2Error:
                    pass
                self.flush()
        if reset is None:
            hook = self.session_hook
            if hook is not None:
                self.session_hook = None
                hook()
        if not self.users:
            if self.goaway:
                self.close()
            elif not self.closed:
                self.pool.idle(self)

    # ------------------------------------------------------------------ I/O
    def flush(self) -> None:
        data = self.h2.data_to_send()
        transport = self.transport
        if data and transport is not None and not transport.is_closing():
            transport.write(data)

    def _cancel_idle(self) -> None:
        handle = self.idle_handle
        if handle is not None:
            handle.cancel()
            self.idle_handle = None

    def close(self) -> None:
        """Close gracefully (GOAWAY, then the socket); streams still on it learn it from ``connection_lost``."""
        if self.closed:
            return
        self.closed = True
        self._cancel_idle()
        if self.transport is not None:
            if self._started:
                try:
                    self.h2.close_connection()
                except H2Error:
                    pass
                self.flush()
            self.transport.close()

    def abort(self) -> None:
        self.closed = True
        self._cancel_idle()
        if self.transport is not None:
            self.transport.abort()
