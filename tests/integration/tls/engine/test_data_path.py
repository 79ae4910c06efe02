"""The raw data path (``raw.py``) over real sockets: bulk transfers with a slow reader, and TLS 1.3 half-close.

The gateway's engine is on both ends of the bulk test (``create_tls_server_protocol`` and ``open_tls_connection``),
so every byte goes through ``SSL_write`` -> memory BIO -> socket -> memory BIO -> ``SSL_read`` twice; the half-close
test uses a blocking pyOpenSSL client in a thread, which sends its close_notify and then still reads.
"""

from __future__ import annotations

import asyncio
import hashlib
import select
import socket
from collections.abc import Callable
from functools import partial
from typing import TypeVar

import pytest
from OpenSSL import SSL

from gateway.tls.engine.app_transport import TlsTransport
from gateway.tls.engine.transport import create_tls_server_protocol, open_tls_connection
from tests.fixtures.certs import make_ca, make_cert
from tests.fixtures.tls_peers import client_context, server_context

T = 20.0  # seconds: the bound of every wait
_R = TypeVar("_R")
SIZE = 8 * 1024 * 1024  # far more than the socket buffers and the write-buffer limits hold


@pytest.fixture(scope="module")
def pki():
    root = make_ca("Data Root", key_type="ec")
    server = make_cert("example.test", root, key_type="ec")
    return root, server


def _payload(size: int) -> bytes:
    """Bytes whose every 32-byte block differs, so a lost, doubled or reordered record changes the digest."""
    return b"".join(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(size // 32))


class Echo(asyncio.Protocol):
    """Echoes everything; pauses its reading while its transport asks it to stop writing (backpressure)."""

    def __init__(self, pressure: asyncio.Event) -> None:
        self.transport: TlsTransport | None = None
        self.paused_writing = 0
        self.pressure = pressure

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, TlsTransport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def pause_writing(self) -> None:
        self.paused_writing += 1
        self.pressure.set()
        assert self.transport is not None
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        assert self.transport is not None
        self.transport.resume_reading()


class SlowReader(asyncio.Protocol):
    """Collects what arrives. It stops reading at the first read until the echo side has felt the backpressure
    (``pressure``), then pauses after each read and resumes a loop turn later."""

    def __init__(self, expected: int, pressure: asyncio.Event) -> None:
        self.pressure = pressure
        self.resumer: asyncio.Future[None] | None = None
        self.transport: TlsTransport | None = None
        self.data = bytearray()
        self.pauses = 0
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.expected = expected

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, TlsTransport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.data += data
        transport = self.transport
        assert transport is not None
        if len(self.data) >= self.expected:
            if not self.done.done():
                self.done.set_result(None)
            return
        transport.pause_reading()
        self.pauses += 1
        if self.pauses == 1:
            self.resumer = asyncio.ensure_future(self._resume_under_pressure())
        else:
            asyncio.get_running_loop().call_soon(transport.resume_reading)

    async def _resume_under_pressure(self) -> None:
        await self.pressure.wait()
        assert self.transport is not None
        self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(exc or ConnectionError("closed early"))


async def test_bulk_both_ways_through_the_engine_with_a_slow_reader(pki):
    root, server_id = pki
    payload = _payload(SIZE)
    loop = asyncio.get_running_loop()
    echoes: list[Echo] = []
    pressure = asyncio.Event()

    def make_echo() -> Echo:
        echoes.append(Echo(pressure))
        return echoes[-1]

    factory = create_tls_server_protocol(server_context(server_id), make_echo, handshake_timeout=T)
    server = await loop.create_server(factory, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with asyncio.timeout(T):
            transport, app = await open_tls_connection(
                loop, "127.0.0.1", port, client_context([root]), "example.test", lambda: SlowReader(SIZE, pressure)
            )
            assert isinstance(app, SlowReader)
            for i in range(0, SIZE, 1 << 20):
                transport.write(payload[i : i + (1 << 20)])
            await app.done
            transport.close()
    finally:
        server.close()
        await server.wait_closed()
    assert len(app.data) == SIZE and hashlib.sha256(app.data).digest() == hashlib.sha256(payload).digest()
    assert app.pauses > 10  # the reader really paused, many times
    assert echoes and echoes[0].paused_writing > 0  # and the echo side saw its socket buffer fill up


class AnswerAtEof(asyncio.Protocol):
    """Reads a request until the peer's close_notify, then answers on the half-open connection and closes."""

    def __init__(self) -> None:
        self.transport: TlsTransport | None = None
        self.request = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, TlsTransport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.request += data

    def eof_received(self) -> bool:
        assert self.transport is not None
        self.transport.write(b"got %d bytes after your close_notify" % len(self.request))
        self.transport.close()
        return True  # keep our side open until the answer is written


def _retrying(sock: socket.socket, call: Callable[[], _R]) -> _R:
    """``call()`` on a non-blocking pyOpenSSL connection, waiting (bounded) for the socket when OpenSSL asks."""
    while True:
        try:
            return call()
        except SSL.WantReadError:
            ready = select.select([sock], [], [], T)[0]
        except SSL.WantWriteError:
            ready = select.select([], [sock], [], T)[1]
        if not ready:
            raise TimeoutError("the TLS peer stalled")


def _half_closing_client(port: int, ctx: SSL.Context, request: bytes) -> tuple[bytes, bool]:
    """Blocking: handshake (TLS 1.3), send ``request``, send close_notify, then read until the server's."""
    with socket.create_connection(("127.0.0.1", port), timeout=T) as sock:
        sock.setblocking(False)
        conn = SSL.Connection(ctx, sock)
        conn.set_tlsext_host_name(b"example.test")
        conn.set_connect_state()
        _retrying(sock, conn.do_handshake)
        sent = 0
        while sent < len(request):
            sent += _retrying(sock, partial(conn.send, request[sent:]))
        _retrying(sock, conn.shutdown)  # our close_notify: TLS 1.3 lets the other direction stay open
        answer = bytearray()
        while True:
            try:
                answer += _retrying(sock, lambda: conn.recv(65536))
            except SSL.ZeroReturnError:
                return bytes(answer), True
            except SSL.SysCallError:
                return bytes(answer), False


async def test_tls13_half_close_the_answer_still_arrives(pki):
    root, server_id = pki
    loop = asyncio.get_running_loop()
    factory = create_tls_server_protocol(server_context(server_id), AnswerAtEof, handshake_timeout=T)
    server = await loop.create_server(factory, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    ctx = client_context([root], max_version=SSL.TLS1_3_VERSION)
    request = b"r" * 100_000  # several records
    try:
        async with asyncio.timeout(T):
            answer, clean = await asyncio.to_thread(_half_closing_client, port, ctx, request)
    finally:
        server.close()
        await server.wait_closed()
    assert answer == b"got 100000 bytes after your close_notify"
    assert clean  # the server ended with its own close_notify
