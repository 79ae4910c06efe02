"""A downstream HTTP/2 connection (ALPN ``h2``, or h2c with prior knowledge): the ``h2`` state machine, its streams,
limits and timer.

Theory of operation. ``h2`` (the sans-I/O sibling of ``h11``) does the framing, HPACK, flow-control accounting and
stream states; this protocol only shuttles bytes between it and the TLS transport and turns its events into stream
calls (``_HANDLERS``, a table by event class). Each request stream gets an ``H2Stream``, the per-stream adaptor
that gives the exchange the contract of an HTTP/1.1 connection (``http2.stream``), so the exchange is the one
every HTTP/1.1 request runs.

Rules:

1. Settings we announce: nginx's defaults (``http2.limits``): 128 concurrent streams, the header list bounded by
   ``large_client_header_buffers`` (count x size), no server push. The request head is built as nginx builds it
   from the pseudo-headers (``Host`` from ``:authority`` when the client sent no ``Host``; ``Cookie`` crumbs joined
   with ``"; "``) and goes through the same ``check_head`` as an HTTP/1.1 head; a refused head is answered on its
   stream (nginx's status and page), not by closing the connection.
2. A request body without ``Content-Length`` is sent upstream chunked (HTTP/2 has no framing header of its own).
3. Any protocol error ``h2`` raises, and any flood ``http2.limits`` counts, ends this connection alone: GOAWAY
   with the error's code, an ``info`` line, the open streams' exchanges aborted (499 in the access log when no
   response began).
4. One timer handle (lesson 10): with no stream open the connection is idle and closes (GOAWAY ``NO_ERROR``) after
   ``keepalive_timeout``, as nginx closes an idle HTTP/2 connection; while streams are open it fires at the nearest
   stream deadline: ``client_body_timeout`` between two DATA frames of a body (nginx's 408 in the access log, the
   stream reset), ``send_timeout`` (60 s) while the client's window holds a response back.
5. A graceful stop (``shutdown``) closes an idle connection at once, a busy one after its last stream.
6. Access-log lines say ``HTTP/2.0`` (the head's version is ``2.0``), as nginx's ``$request`` does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from h2 import events as ev
from h2.config import H2Configuration
from h2.connection import H2Connection as H2Machine
from h2.errors import ErrorCodes
from h2.exceptions import ProtocolError
from h2.settings import SettingCodes, Settings

from gateway.downstream.exchange import DownstreamExchange
from gateway.downstream.flow import peer_and_port
from gateway.downstream.http2.hpack_out import LiteralEncoder
from gateway.downstream.http2.limits import HEADER_TABLE_SIZE, MAX_CONCURRENT_STREAMS, Flood, FloodCounter
from gateway.downstream.http2.request import error_code, request_head
from gateway.downstream.http2.stream import H2Stream
from gateway.downstream.rejects import reject_response
from gateway.downstream.request import HeadRejected, RequestHead, check_head, host_var, new_request_id
from gateway.downstream.shared import SharedState

if TYPE_CHECKING:
    from gateway.settings import Listener

__all__ = ["H2Connection"]

#: what clients send is validated by h2 (names, pseudo-headers, connection-specific headers, CR/LF/NUL); what we send
#: comes from llhttp's parse of the exchange's HTTP/1.1 head, lowercased by the translator: checking it again would
#: cost more than the rest of the head's way out
_CONFIG = H2Configuration(
    client_side=False,
    header_encoding=None,
    validate_inbound_headers=True,
    validate_outbound_headers=False,
    normalize_outbound_headers=False,
)


class H2Connection(asyncio.Protocol):
    """One downstream HTTP/2 connection (ALPN ``h2`` on an ``ssl http2`` listener, a preface on a plain one)."""

    __slots__ = (
        "_corked",
        "_deadline",
        "_dirty",
        "_floods",
        "_timer",
        "closing",
        "conn_id",
        "h2",
        "https",
        "limits",
        "listener",
        "local_port",
        "loop",
        "peer_ip",
        "peer_trusted",
        "plugin_cache",
        "remote_addr",
        "sni",
        "state",
        "streams",
        "tls",
        "transport",
        "write_paused",
    )

    def __init__(self, state: SharedState, listener: Listener, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.state = state
        self.listener = listener
        self.loop = loop if loop is not None else asyncio.get_running_loop()  # as ``HttpConnection``'s
        self.limits = state.head_limits
        self.transport: asyncio.Transport | None = None
        self.h2 = H2Machine(_CONFIG)
        self.h2.encoder = cast(Any, LiteralEncoder())  # literals only (``http2.hpack_out``)
        self.streams: dict[int, H2Stream] = {}
        self.conn_id = 0
        self.peer_ip = ""
        self.remote_addr = ""
        self.peer_trusted = False
        self.local_port = listener.port
        self.tls: object | None = None
        self.https = False
        self.sni: str | None = None
        #: shared by every stream (``H2Stream.plugin_cache``): verdicts on the connection's client certificate
        self.plugin_cache: dict[object, object] | None = {}
        self.closing = False
        self.write_paused = False
        self._corked = 0
        #: streams with output produced while corked (``push_later``)
        self._dirty: list[H2Stream] = []
        self._timer: asyncio.TimerHandle | None = None
        self._deadline = 0.0
        self._floods = FloodCounter(self.loop.time())

    # ================================================================== asyncio protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.peer_ip, self.local_port = peer_and_port(transport, self.local_port)
        self.remote_addr = self.peer_ip
        tls = self.tls = transport.get_extra_info("tls")
        self.https = tls is not None
        self.sni = getattr(tls, "sni", None)
        state = self.state
        self.peer_trusted = state.is_trusted(self.peer_ip)
        self.conn_id = state.register(self)
        h2 = self.h2
        header_list = self.limits.total
        # initial values (not ``update``, which only queues changes until the client ACKs them)
        h2.local_settings = Settings(
            client=False,
            initial_values={
                SettingCodes.MAX_CONCURRENT_STREAMS: MAX_CONCURRENT_STREAMS,
                SettingCodes.MAX_HEADER_LIST_SIZE: header_list,
                SettingCodes.HEADER_TABLE_SIZE: HEADER_TABLE_SIZE,
                SettingCodes.ENABLE_PUSH: 0,
            },
        )
        h2.initiate_connection()
        # in force from the client's first byte, not only once it ACKs our SETTINGS
        h2.decoder.max_header_list_size = header_list
        self.flush()
        self._idle()

    def data_received(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return  # after our GOAWAY: h2 would refuse every frame, and log it again
        try:
            events = self.h2.receive_data(data)
        except ProtocolError as exc:
            self._fail(error_code(exc), f"client sent invalid HTTP/2: {exc}")
            return
        floods = self._floods
        try:
            for event in events:
                handler = _HANDLERS.get(type(event))
                if handler is not None and handler(self, event):
                    return  # the connection ended
        finally:
            floods.reset(Flood.STREAMS_AT_ONCE)
        self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        for stream in list(self.streams.values()):
            stream.client_reset()
        self.streams.clear()
        self.state.unregister(self)

    def eof_received(self) -> bool | None:
        return False

    def pause_writing(self) -> None:
        self.write_paused = True
        for stream in self.streams.values():
            stream.flow.write_paused = True
            stream.set_write_paused(True)

    def resume_writing(self) -> None:
        self.write_paused = False
        for stream in list(self.streams.values()):
            stream.flow.write_paused = False
            stream.set_write_paused(False)

    # ================================================================== output
    def flush(self) -> None:
        if self._corked:
            return
        data = self.h2.data_to_send()
        if data:
            transport = self.transport
            if transport is not None and not transport.is_closing():
                transport.write(data)

    def cork(self) -> bool:
        """Hold the frames until ``uncork`` (the upstream side corks around one read: one TLS write for all)."""
        self._corked += 1
        return True

    def uncork(self) -> None:
        self._corked -= 1
        if not self._corked and self._dirty:
            dirty = self._dirty
            self._dirty = []
            for stream in dirty:
                if not stream.output_done:
                    stream.push()
        self.flush()

    def push_later(self, stream: H2Stream) -> None:
        """A stream has new output: sent now, or at ``uncork`` when corked (head and body in the fewest frames)."""
        if self._corked:
            if stream not in self._dirty:
                self._dirty.append(stream)
            return
        stream.push()
        self.flush()

    def host_var(self, host: str | None) -> str:
        return host_var(host)

    def log_access(self, ex: DownstreamExchange) -> None:
        log = self.state.access_log
        if not log.enabled:
            return
        head = ex.head
        log.write(
            self.remote_addr, head.request_line, ex.status, ex.bytes_sent, head.referer, head.user_agent, ex.request_id
        )

    def stream_closed(self, stream: H2Stream) -> None:
        """A stream is forgotten once its exchange finished and its last frame is out."""
        if not (stream.finished and stream.output_done):
            return
        if self.streams.pop(stream.stream_id, None) is not None and not self.streams:
            if self.closing:
                self._goaway(ErrorCodes.NO_ERROR)
                return
            self._idle()

    # ================================================================== events (``_HANDLERS``): True = connection ended
    def _on_request(self, event: ev.RequestReceived) -> bool:
        sid = event.stream_id
        if self._floods.add(Flood.STREAMS_AT_ONCE, self.loop.time()):
            return self._calm(Flood.STREAMS_AT_ONCE)
        self._deadline = 0.0  # not idle any more (the handle, if any, finds the streams when it fires)
        ended = event.stream_ended is not None
        head = request_head(event.headers or [])
        stream = H2Stream(self, sid, head, ended)
        self.streams[sid] = stream
        state = self.state
        state.total_requests += 1
        state.connections_writing += 1
        try:
            if head.method == "CONNECT":
                raise HeadRejected(400, "client sent invalid :method header: CONNECT")
            check_head(head, self.limits)
        except HeadRejected as exc:
            self._refuse(stream, head, exc)
            return False
        if not ended and head.content_length is None:
            head.chunked = True  # rule 2
        if self.peer_trusted:
            stream.remote_addr = state.real_ip(self.peer_ip, head)
        ex = state.exchange_type(cast(Any, stream), head)
        stream.exchange = ex
        if stream.deadline:
            self.stream_deadline(stream.deadline)
        ex.begin()
        return False

    def _on_data(self, event: ev.DataReceived) -> bool:
        stream = self.streams.get(event.stream_id)
        length = event.flow_controlled_length or 0
        if stream is not None:
            stream.body(event.data or b"", length)
        elif length:
            try:
                self.h2.acknowledge_received_data(length, event.stream_id)
            except ProtocolError:
                pass
        return False

    def _on_stream_ended(self, event: ev.StreamEnded) -> bool:
        stream = self.streams.get(event.stream_id)
        if stream is not None:
            stream.body_complete()
        return False

    def _on_reset(self, event: ev.StreamReset) -> bool:
        stream = self.streams.pop(event.stream_id, None)
        if stream is not None:
            stream.client_reset()
            if not self.streams:
                self._idle()
        if event.remote_reset and self._floods.add(Flood.RESETS, self.loop.time()):
            return self._calm(Flood.RESETS)
        return False

    def _on_window(self, event: ev.WindowUpdated) -> bool:
        if event.stream_id:
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream.window_opened()
        else:
            for stream in list(self.streams.values()):
                stream.window_opened()
        return False

    def _on_settings(self, event: ev.RemoteSettingsChanged) -> bool:
        if self._floods.add(Flood.SETTINGS, self.loop.time()):
            return self._calm(Flood.SETTINGS)
        if SettingCodes.INITIAL_WINDOW_SIZE in event.changed_settings:
            for stream in list(self.streams.values()):
                stream.window_opened()
        return False

    def _on_ping(self, event: ev.PingReceived) -> bool:
        if self._floods.add(Flood.PINGS, self.loop.time()):
            return self._calm(Flood.PINGS)
        return False

    def _on_goaway(self, event: ev.ConnectionTerminated) -> bool:
        self._end(None)
        return True

    # ================================================================== failures and the end
    def _refuse(self, stream: H2Stream, head: RequestHead, exc: HeadRejected) -> None:
        """A head ``check_head`` refused: nginx's answer on that stream, and its access-log line."""
        log = self.state.error_log
        if log.info_enabled:
            log.info(f"{exc.reason} while processing HTTP/2 connection, client: {self.peer_ip}", self.conn_id)
        rid = new_request_id()
        data, sent, body_length = reject_response(exc.status, head, rid, self.state)
        self.state.connections_writing -= 1
        self.state.access_log.write(
            self.remote_addr, head.request_line, sent, body_length, head.referer, head.user_agent, rid
        )
        stream.write(data)
        stream.finish_without_exchange()

    def _calm(self, flood: Flood) -> bool:
        self._fail(ErrorCodes.ENHANCE_YOUR_CALM, flood.reason)
        return True

    def _fail(self, code: int, reason: str) -> None:
        """Rule 3: GOAWAY with ``code`` (what was queued for the client, ACKs included, is dropped), then close."""
        log = self.state.error_log
        if log.info_enabled:
            log.info(f"{reason} while processing HTTP/2 connection, client: {self.peer_ip}", self.conn_id)
        self.h2.clear_outbound_data_buffer()
        self._end(code)

    def _end(self, code: int | None) -> None:
        for stream in list(self.streams.values()):
            stream.client_reset()
        self.streams.clear()
        if code is not None:
            self._goaway(code)
            return
        self._cancel_timer()
        if self.transport is not None:
            self.transport.close()

    def _goaway(self, code: int) -> None:
        self._cancel_timer()
        try:
            self.h2.close_connection(error_code=code)
        except ProtocolError:
            pass
        self._corked = 0
        self.flush()
        if self.transport is not None:
            self.transport.close()

    # ================================================================== shutdown and the one timer
    def shutdown(self) -> None:
        """Rule 5: GOAWAY now when idle, else after the last open stream."""
        self.closing = True
        if not self.streams:
            self._goaway(ErrorCodes.NO_ERROR)

    @property
    def idle(self) -> bool:
        return not self.streams

    def _idle(self) -> None:
        timeout = self.state.keepalive_timeout
        if timeout <= 0 or self.closing:
            self._goaway(ErrorCodes.NO_ERROR)
            return
        self._deadline = self.loop.time() + timeout
        self.stream_deadline(self._deadline)

    def _cancel_timer(self) -> None:
        self._deadline = 0.0
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def stream_deadline(self, when: float) -> None:
        """A stream's deadline (``H2Stream.deadline``): the one handle fires no later than ``when``."""
        timer = self._timer
        if timer is None or timer.when() > when:
            if timer is not None:
                timer.cancel()
            self._timer = self.loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self.streams:
            self._streams_timer()
            return
        if not self._deadline:
            return
        if self.loop.time() < self._deadline:
            self._timer = self.loop.call_at(self._deadline, self._on_timer)
            return
        self._goaway(ErrorCodes.NO_ERROR)

    def _streams_timer(self) -> None:
        """Rule 4 while streams are open: end the ones whose deadline passed, re-arm for the nearest other."""
        now = self.loop.time()
        nearest = 0.0
        for stream in list(self.streams.values()):
            when = stream.deadline
            if not when:
                continue
            if when <= now:
                stream.timed_out(now)
            elif not nearest or when < nearest:
                nearest = when
        self.flush()
        if nearest:
            self._timer = self.loop.call_at(nearest, self._on_timer)
        elif not self.streams and self._timer is None:
            self._idle()


_Handler = Callable[[H2Connection, Any], bool]
#: what each ``h2`` event does; events not listed (SETTINGS ACKs, PRIORITY, trailers...) need nothing from us
_HANDLERS: dict[type, _Handler] = {
    ev.RequestReceived: H2Connection._on_request,
    ev.DataReceived: H2Connection._on_data,
    ev.StreamEnded: H2Connection._on_stream_ended,
    ev.StreamReset: H2Connection._on_reset,
    ev.WindowUpdated: H2Connection._on_window,
    ev.RemoteSettingsChanged: H2Connection._on_settings,
    ev.PingReceived: H2Connection._on_ping,
    ev.ConnectionTerminated: H2Connection._on_goaway,
}
