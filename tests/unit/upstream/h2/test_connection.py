"""The HTTP/2 upstream client against a real HTTP/2 peer: ``h2``'s server-side state machine, frames passed in memory.

What the exchange sees of each thing an upstream can do on a stream or a connection: a response with DATA and trailers,
a trailers-only answer, RST_STREAM, GOAWAY (processed and unprocessed streams), a protocol error, the socket's end;
and what the upstream sees of the request (pseudo-headers from the exchange's HTTP/1.1 head, the body, the end).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import DataReceived, RequestReceived, StreamEnded, StreamReset
from hyperframe.frame import GoAwayFrame

from gateway.downstream.client import ClientSide
from gateway.upstream.events import UpstreamEvents
from gateway.upstream.failures import Kind, Phase, UpstreamFailure
from gateway.upstream.h2.connection import H2UpstreamConnection
from gateway.upstream.h2.pool import H2Pool
from gateway.upstream.h2.stream import H2UpstreamStream

KEY = ("grpc", ("127.0.0.1", 50051))
HEAD = (
    b"POST /pkg.S/M HTTP/1.1\r\nTE: trailers\r\nHost: up.test\r\nConnection: keep-alive\r\n"
    b"Content-Type: application/grpc\r\n"
)


class Sink(ClientSide):
    """The downstream side an exchange writes to: only corking is asked of it here."""

    def __init__(self) -> None:
        self.corks = 0

    def cork(self) -> bool:
        self.corks += 1
        return True

    def uncork(self) -> None:
        pass


class Recorder(UpstreamEvents):
    """An exchange as the stream reports to it: every event, in order."""

    def __init__(self) -> None:
        self.conn = Sink()
        self.events: list[tuple[str, Any]] = []

    @property
    def sink(self) -> Sink:
        return self.conn

    def on_upstream_head(self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]], *_: Any) -> None:
        self.events.append(("head", (status, headers)))

    def on_upstream_body(self, data: bytes) -> None:
        self.events.append(("body", data))

    def on_upstream_trailers(self, trailers: list[tuple[bytes, bytes]]) -> None:
        self.events.append(("trailers", trailers))

    def on_upstream_complete(self, keep_alive: bool) -> None:
        self.events.append(("complete", keep_alive))

    def on_upstream_error(self, failure: UpstreamFailure) -> None:
        self.events.append(("error", failure))

    def on_upstream_pause_writing(self) -> None:
        self.events.append(("pause", None))

    def on_upstream_resume_writing(self) -> None:
        self.events.append(("resume", None))


class Wire(asyncio.Transport):
    """The socket under the client connection: what it writes goes to the server machine."""

    def __init__(self) -> None:
        super().__init__()
        self.out = bytearray()
        self.closing = False

    def write(self, data: Any) -> None:
        self.out += data

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True


class Peer:
    """One client connection wired to an ``h2`` server machine."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.pool = H2Pool(loop, size=4, max_requests=0, idle_timeout=0)
        self.conn = self.pool.connection(KEY, b"http")
        self.wire = Wire()
        self.conn.connection_made(self.wire)
        self.conn.start()
        self.pool.add(self.conn)
        self.server = H2Connection(H2Configuration(client_side=False, header_encoding=None))
        self.server.initiate_connection()
        self.events: list[Any] = []
        self.exchange()

    def exchange(self) -> None:
        """Carry bytes both ways until both sides are quiet."""
        while True:
            moved = False
            if self.wire.out:
                data, self.wire.out = bytes(self.wire.out), bytearray()
                self.events.extend(self.server.receive_data(data))
                moved = True
            out = self.server.data_to_send()
            if out:
                self.conn.data_received(out)
                moved = True
            if not moved:
                return

    def request(self, head: bytes = HEAD + b"Content-Length: 5\r\n\r\n", body: bytes = b"hello") -> Recorder:
        stream = self.pool.stream(KEY)
        assert stream is not None
        exchange = Recorder()
        stream.bind(exchange, 60.0, 60.0, False)
        assert stream.transport is not None
        stream.transport.write(head + body)
        self.exchange()
        return exchange

    def stream_of(self, exchange: Recorder) -> H2UpstreamStream:
        return next(s for s in self.conn.users if s.exchange is exchange)


async def test_request_is_translated_and_response_with_trailers_relayed() -> None:
    peer = Peer(asyncio.get_running_loop())
    exchange = peer.request()
    received = next(e for e in peer.events if isinstance(e, RequestReceived))
    assert received.headers[:4] == [
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":authority", b"up.test"),
        (b":path", b"/pkg.S/M"),
    ]
    names = [name for name, _ in received.headers]
    assert b"connection" not in names and b"host" not in names and (b"te", b"trailers") in received.headers
    assert b"".join(e.data for e in peer.events if isinstance(e, DataReceived)) == b"hello"
    assert any(isinstance(e, StreamEnded) for e in peer.events)
    sid = received.stream_id
    peer.server.send_headers(sid, [(b":status", b"200"), (b"content-type", b"application/grpc")])
    peer.server.send_data(sid, b"\x00\x00\x00\x00\x02hi")
    peer.server.send_headers(sid, [(b"grpc-status", b"5"), (b"grpc-message", b"gone")], end_stream=True)
    peer.exchange()
    assert exchange.events == [
        ("head", (200, [(b"content-type", b"application/grpc")])),
        ("body", b"\x00\x00\x00\x00\x02hi"),
        ("trailers", [(b"grpc-status", b"5"), (b"grpc-message", b"gone")]),
        ("complete", True),
    ]


async def test_trailers_only_answer_completes_after_its_head() -> None:
    peer = Peer(asyncio.get_running_loop())
    exchange = peer.request(HEAD + b"\r\n", b"")  # no body: the head ends the request stream
    received = next(e for e in peer.events if isinstance(e, RequestReceived))
    assert received.stream_ended is not None
    head = [(b":status", b"200"), (b"content-type", b"application/grpc"), (b"grpc-status", b"12")]
    peer.server.send_headers(received.stream_id, head, end_stream=True)
    peer.exchange()
    assert exchange.events == [
        ("head", (200, [(b"content-type", b"application/grpc"), (b"grpc-status", b"12")])),
        ("complete", True),
    ]


async def test_chunked_body_is_unframed_and_ends_the_stream() -> None:
    peer = Peer(asyncio.get_running_loop())
    exchange = peer.request(HEAD + b"Transfer-Encoding: chunked\r\n\r\n", b"3\r\nabc\r\n")
    stream = peer.stream_of(exchange)
    stream.send(b"2\r\nde\r\n")
    stream.send(b"0\r\n\r\n")
    peer.exchange()
    assert b"".join(e.data for e in peer.events if isinstance(e, DataReceived)) == b"abcde"
    assert sum(isinstance(e, StreamEnded) for e in peer.events) == 1


async def test_rst_stream_is_nginxs_rejected_request_line() -> None:
    peer = Peer(asyncio.get_running_loop())
    exchange = peer.request()
    sid = next(e for e in peer.events if isinstance(e, RequestReceived)).stream_id
    peer.server.reset_stream(sid, ErrorCodes.REFUSED_STREAM)
    peer.exchange()
    assert exchange.events == [
        ("error", UpstreamFailure(Kind.INVALID, Phase.READING_HEADER, 0, "upstream rejected request with error 7"))
    ]
    assert not peer.conn.users and peer.pool.count(KEY) == 1  # the connection stays for other streams


@pytest.mark.parametrize("code", [0, 2])
async def test_goaway_fails_the_streams_and_drops_the_connection(code: int) -> None:
    peer = Peer(asyncio.get_running_loop())
    first, second = peer.request(), peer.request()
    ids = [e.stream_id for e in peer.events if isinstance(e, RequestReceived)]
    goaway = GoAwayFrame(0)
    goaway.last_stream_id = ids[0]  # the peer took the first stream, not the second
    goaway.error_code = code
    peer.conn.data_received(goaway.serialize())
    # h2 accepts no frame after a GOAWAY: even the stream the peer took cannot be answered on this connection
    taken = UpstreamFailure(Kind.INVALID, Phase.READING_HEADER, 0, "upstream sent goaway with error 2")
    closed = UpstreamFailure(Kind.CLOSED, Phase.READING_HEADER)
    assert first.events == [("error", taken if code else closed)]
    assert second.events == [("error", closed)]
    assert peer.pool.stream(KEY) is None and peer.pool.count(KEY) == 0
    assert peer.wire.closing


async def test_protocol_error_fails_every_stream_and_drops_the_connection() -> None:
    peer = Peer(asyncio.get_running_loop())
    first, second = peer.request(), peer.request()
    peer.conn.data_received(b"\x00\x00\x08\x06\x00\x00\x00\x00\x01" + bytes(8))  # a PING on stream 1
    for exchange in (first, second):
        (kind, failure), *_ = exchange.events
        assert kind == "error" and failure.kind is Kind.INVALID
        assert failure.detail.startswith("upstream sent invalid http2")
    assert peer.wire.closing and peer.pool.count(KEY) == 0


async def test_connection_loss_fails_its_streams_as_nginx_words_them() -> None:
    peer = Peer(asyncio.get_running_loop())
    exchange = peer.request()
    peer.conn.connection_lost(ConnectionResetError(104, "Connection reset by peer"))
    assert exchange.events == [
        ("error", UpstreamFailure(Kind.ERROR, Phase.READING_HEADER, 104, "Connection reset by peer"))
    ]
    assert peer.pool.count(KEY) == 0


async def test_abandoned_stream_is_reset_with_cancel() -> None:
    peer = Peer(asyncio.get_running_loop())
    exchange = peer.request()
    peer.stream_of(exchange).abort()
    peer.exchange()
    resets = [e for e in peer.events if isinstance(e, StreamReset)]
    assert [(r.error_code, r.remote_reset) for r in resets] == [(ErrorCodes.CANCEL, True)]
    assert not peer.conn.users


async def test_request_body_waits_for_the_window_and_pauses_the_client() -> None:
    peer = Peer(asyncio.get_running_loop())
    size = 200 * 1024  # beyond the 64 KiB initial window and the pause mark
    exchange = peer.request(HEAD + f"Content-Length: {size}\r\n\r\n".encode(), b"x" * size)
    got = sum(len(e.data) for e in peer.events if isinstance(e, DataReceived))
    assert got == 65535  # the peer's initial window, and no more
    assert ("pause", None) in exchange.events
    for event in [e for e in peer.events if isinstance(e, DataReceived)]:
        peer.server.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
    peer.events.clear()
    while not any(isinstance(e, StreamEnded) for e in peer.events):
        peer.exchange()
        fresh = [e for e in peer.events if isinstance(e, DataReceived) and not getattr(e, "_acked", False)]
        if not fresh:
            break
        for event in fresh:
            event._acked = True  # type: ignore[attr-defined]
            peer.server.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        got += sum(len(e.data) for e in fresh)
    assert got == size
    assert exchange.events[-1] == ("resume", None)


@pytest.mark.parametrize("limit", [1, 2])
async def test_max_requests_bounds_the_streams_of_a_connection(limit: int) -> None:
    loop = asyncio.get_running_loop()
    pool = H2Pool(loop, size=4, max_requests=limit, idle_timeout=0)
    conn = pool.connection(KEY, b"http")
    assert isinstance(conn, H2UpstreamConnection)
    conn.connection_made(Wire())
    conn.start()
    pool.add(conn)
    streams = [pool.stream(KEY) for _ in range(limit + 1)]
    assert all(s is not None for s in streams[:limit]) and streams[limit] is None


async def test_pool_size_zero_closes_a_connection_with_its_last_stream() -> None:
    loop = asyncio.get_running_loop()
    pool = H2Pool(loop, size=0, max_requests=0, idle_timeout=0)
    conn = pool.connection(KEY, b"http")
    wire = Wire()
    conn.connection_made(wire)
    conn.start()
    pool.add(conn)
    assert pool.count(KEY) == 0  # not shared: pooling is off
    stream = conn.open_stream(reused=False)
    stream.close()
    assert wire.closing


async def test_idle_connection_closes_after_the_idle_timeout() -> None:
    loop = asyncio.get_running_loop()
    pool = H2Pool(loop, size=2, max_requests=0, idle_timeout=0.05)
    conn = pool.connection(KEY, b"http")
    wire = Wire()
    conn.connection_made(wire)
    conn.start()
    pool.add(conn)
    pool.stream(KEY).close()  # type: ignore[union-attr]
    assert pool.count(KEY) == 1 and not wire.closing  # kept while idle
    deadline = loop.time() + 5
    while not wire.closing and loop.time() < deadline:
        await asyncio.sleep(0.01)  # polling for the timer's effect, bounded
    assert wire.closing and pool.count(KEY) == 0


async def test_settle_hands_the_opening_outcome_to_every_waiter() -> None:
    pool = H2Pool(asyncio.get_running_loop(), size=4, max_requests=0, idle_timeout=0)
    got: list[Any] = []
    failing = pool.connection(KEY, b"http")
    assert pool.opening(KEY) is failing
    failing.waiters.extend([got.append, got.append])
    refused = UpstreamFailure(Kind.ERROR, Phase.CONNECTING, 111, "Connection refused")
    pool.settle(failing, refused)
    assert got == [refused, refused] and pool.opening(KEY) is None and pool.count(KEY) == 0
    abandoned = pool.connection(KEY, b"http")
    abandoned.waiters.append(got.append)
    pool.settle(abandoned, None, abandoned=True)  # its opener's client left: each waiter connects itself
    assert got[-1] is None and pool.count(KEY) == 0
    up = pool.connection(KEY, b"http")
    up.waiters.append(got.append)
    pool.settle(up, None)
    assert got[-1] is up and pool.count(KEY) == 1 and pool.opening(KEY) is None
