"""TlsProtocol/TlsTransport over an in-memory raw transport: the last write with the close_notify, and the
``ssl`` listener's accept timer handed over as the handshake timer (one handle per connection)."""

from __future__ import annotations

import asyncio
import io
import ssl
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from gateway.downstream.connection import HttpConnection
from gateway.downstream.shared import SharedState
from gateway.downstream.tls_listener import FirstBytes
from gateway.observability.accesslog import AccessLog
from gateway.observability.errorlog import ErrorLog
from gateway.proxy.exchange import Exchange
from gateway.settings import load_settings
from gateway.tls.engine.app_transport import TlsTransport
from gateway.tls.engine.transport import TlsProtocol
from tests.fixtures.certs import make_ca, make_cert
from tests.fixtures.tls_peers import server_context


class Raw(asyncio.Transport):
    """What uvloop's socket transport offers TlsProtocol, recording every call."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = self.aborted = False
        self.protocol: Any = None

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def is_reading(self) -> bool:
        return True


class App(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport


def _client() -> tuple[ssl.SSLObject, ssl.MemoryBIO, ssl.MemoryBIO]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    return ctx.wrap_bio(incoming, outgoing, server_hostname="example.test"), incoming, outgoing


def _handshake(protocol: TlsProtocol, raw: Raw) -> tuple[ssl.SSLObject, ssl.MemoryBIO]:
    client, incoming, outgoing = _client()
    try:
        client.do_handshake()
    except ssl.SSLWantReadError:
        pass
    protocol.data_received(outgoing.read())
    incoming.write(b"".join(raw.writes))
    raw.writes.clear()
    client.do_handshake()
    protocol.data_received(outgoing.read())
    incoming.write(b"".join(raw.writes))  # the session tickets
    raw.writes.clear()
    return client, incoming


def _context() -> Any:
    root = make_ca("Root", key_type="ec")
    return server_context(make_cert("example.test", root, key_type="ec"))


async def test_close_with_sends_the_data_and_close_notify_in_one_write() -> None:
    raw, app = Raw(), App()
    protocol = TlsProtocol(_context(), lambda: app, server_side=True)
    protocol.connection_made(raw)
    client, incoming = _handshake(protocol, raw)
    transport = app.transport
    assert isinstance(transport, TlsTransport)
    transport.close_with([b"HTTP/1.1 200 OK\r\n", b"Content-Length: 2\r\n\r\nok"])
    assert len(raw.writes) == 1 and raw.closed  # one socket write, then the close
    assert transport.is_closing() and not transport.is_reading()
    incoming.write(raw.writes[0])
    assert client.read(1000) == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    try:  # then the close_notify (the stdlib reports it as b"" or SSLZeroReturnError)
        assert client.read(1000) == b""
    except ssl.SSLZeroReturnError:
        pass
    client.unwrap()  # completes at once only because the peer's close_notify was received (else SSLWantReadError)
    transport.close_with([b"late"])  # after the close: dropped, like write()
    assert len(raw.writes) == 1


async def test_http_connection_closes_a_corked_response_with_close_with(tmp_path: Path) -> None:
    calls: list[Any] = []

    class Transport:  # what HttpConnection._close sees: the TLS transport or any other
        def __init__(self) -> None:
            self.calls = calls

        def is_closing(self) -> bool:
            return False

        def write(self, data: bytes) -> None:
            calls.append(("write", data))

        def writelines(self, data: list[bytes]) -> None:
            calls.append(("writelines", list(data)))

        def close(self) -> None:
            calls.append(("close",))

        def close_with(self, data: list[bytes]) -> None:
            calls.append(("close_with", list(data)))

    # built through __init__ (not __new__ and a few attributes): the class may be compiled (mypyc), whose instances
    # have every attribute set by __init__
    settings = load_settings(env={}, overrides={"prefix": str(tmp_path), "admin_listen": "off"})
    state = SharedState(settings, ErrorLog(None, stream=io.StringIO()), AccessLog(None), Exchange)
    conn = HttpConnection(state, SimpleNamespace(port=8000))  # type: ignore[arg-type]
    conn._out = [b"a", b"b"]
    conn.transport = Transport()  # type: ignore[assignment]
    conn._close()
    assert calls == [("write", b"ab"), ("close",)]  # plain transports: the held bytes, then the close

    raw, app = Raw(), App()
    protocol = TlsProtocol(_context(), lambda: app, server_side=True)
    protocol.connection_made(raw)
    client, incoming = _handshake(protocol, raw)
    conn._broken = False
    conn._out = [b"a", b"b"]
    conn.transport = app.transport
    conn._close()
    assert len(raw.writes) == 1 and raw.closed
    incoming.write(raw.writes[0])
    assert client.read(10) == b"ab"


class Log:
    info_enabled = True

    def __init__(self) -> None:
        self.stream = io.StringIO()

    def info(self, text: str) -> None:
        self.stream.write(text + "\n")


class State:
    """The parts of ``ProxyState`` that ``FirstBytes`` uses: the pending set a drain waits for."""

    def __init__(self) -> None:
        self.pending: set[Any] = set()
        self.shutting_down = False

    def settle_pending(self, item: Any) -> None:
        self.pending.discard(item)


class Listener:
    """The parts of ``TlsListener`` that ``FirstBytes`` uses."""

    def __init__(self, timeout: float) -> None:
        self.state = State()
        self.context = _context()
        self.loop = asyncio.get_running_loop()
        self.timeout = timeout
        self.lines: list[str] = []
        self.apps: list[App] = []
        self.handshakes: list[Any] = []

    def handshake_timeout(self) -> float:
        return self.timeout

    def app_factory(self) -> App:
        app = App()
        self.apps.append(app)
        return app

    def log_failure(self, what: str, peer: Any) -> None:
        self.lines.append(f"{what} while SSL handshaking")

    def handshake_done(self, session: Any) -> None:
        self.handshakes.append(session)

    def on_handshake_error(self, exc: Any, peer: Any) -> None:
        self.lines.append(f"{exc.kind}: {exc.reason}")


def _first_flight() -> bytes:
    client, _incoming, outgoing = _client()
    try:
        client.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


async def test_accept_timer_becomes_the_handshake_timer() -> None:
    listener = Listener(0.05)
    first = FirstBytes(listener)  # type: ignore[arg-type]
    raw = Raw()
    first.connection_made(raw)
    timer = first._timer
    assert timer is not None
    first.data_received(_first_flight())
    protocol = raw.protocol
    assert isinstance(protocol, TlsProtocol)
    assert protocol._timer is timer  # adopted, not cancelled and replaced
    assert not timer.cancelled()
    await asyncio.sleep(0.1)
    # the handshake's timeout, reported once, socket aborted (as nginx: "client timed out")
    assert listener.lines == ["timeout: SSL handshaking timed out"]
    assert raw.aborted and protocol._timer is None
    assert listener.state.pending == {first}  # until the transport reports the loss
    protocol.connection_lost(None)
    assert listener.state.pending == set()


async def test_completed_handshake_cancels_the_adopted_timer() -> None:
    listener = Listener(0.05)
    first = FirstBytes(listener)  # type: ignore[arg-type]
    raw = Raw()
    first.connection_made(raw)
    timer = first._timer
    assert timer is not None
    client, incoming, outgoing = _client()
    try:
        client.do_handshake()
    except ssl.SSLWantReadError:
        pass
    first.data_received(outgoing.read())
    protocol = raw.protocol
    assert listener.state.pending == {first}  # handshaking: a drain waits for it
    incoming.write(b"".join(raw.writes))
    client.do_handshake()
    protocol.data_received(outgoing.read())
    assert timer.cancelled() and listener.apps
    assert listener.state.pending == set()  # an HTTP connection now, drained as one
    assert [session.version for session in listener.handshakes] == ["TLSv1.3"]  # counted once, as completed
    await asyncio.sleep(0.1)
    assert listener.lines == [] and not raw.aborted


async def test_plain_http_cancels_the_accept_timer() -> None:
    listener = Listener(0.05)
    first = FirstBytes(listener)  # type: ignore[arg-type]
    raw = Raw()
    first.connection_made(raw)
    timer = first._timer
    assert timer is not None
    assert listener.state.pending == {first}
    first.data_received(b"GET / HTTP/1.1\r\n")
    assert timer.cancelled() and raw.protocol is listener.apps[0]
    assert listener.state.pending == set()
    await asyncio.sleep(0.1)
    assert listener.lines == []


async def test_shutdown_gives_a_silent_socket_the_first_request_grace(monkeypatch: Any) -> None:
    """A socket that has sent nothing when the process stops waits ``FIRST_REQUEST_GRACE``, not the 60 s header
    timeout (the drain would otherwise wait for it)."""
    import gateway.downstream.tls_listener as tls_listener

    monkeypatch.setattr(tls_listener, "FIRST_REQUEST_GRACE", 0.05)
    listener = Listener(60.0)
    first = FirstBytes(listener)  # type: ignore[arg-type]
    raw = Raw()
    first.connection_made(raw)
    first.shutdown()
    await asyncio.sleep(0.1)
    assert raw.aborted and listener.lines == ["client timed out (110: Connection timed out) while SSL handshaking"]
    first.connection_lost(None)
    assert listener.state.pending == set()
