"""TlsProtocol / TlsTransport over real loopback sockets, on asyncio and on uvloop.

Peers: Python ``ssl`` clients and servers, ``openssl s_client``, and raw TCP sockets for the hostile cases.
Every wait is on an event or a future, bounded by ``asyncio.timeout``; nothing sleeps to wait for readiness.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator

import pytest
from OpenSSL import SSL

from gateway.tls.engine.app_transport import TlsTransport
from gateway.tls.engine.errors import TlsHandshakeError
from gateway.tls.engine.transport import TlsProtocol, create_tls_server_protocol, open_tls_connection
from tests.fixtures.certs import make_ca, make_cert
from tests.fixtures.tls_peers import client_context, server_context

T = 5.0  # seconds: the bound of every wait


@pytest.fixture(scope="module")
def pki():
    root = make_ca("Test Root", key_type="ec")
    inter = make_ca("Test Intermediate", root, key_type="ec")
    server = make_cert("example.test", inter, key_type="ec")
    return root, inter, server


class App(asyncio.Protocol):
    """A recording app protocol: echoes when asked, and exposes every callback as an awaitable."""

    def __init__(self, echo: bool = True) -> None:
        self.echo = echo
        self.transport: TlsTransport | None = None
        self.data = bytearray()
        self.made: asyncio.Future[TlsTransport] = asyncio.get_running_loop().create_future()
        self.lost: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()
        self.eof = asyncio.Event()
        self.got_data = asyncio.Event()
        self.paused = asyncio.Event()
        self.resumed = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, TlsTransport)
        self.transport = transport
        self.made.set_result(transport)

    def data_received(self, data: bytes) -> None:
        self.data += data
        self.got_data.set()
        if self.echo:
            assert self.transport is not None
            self.transport.write(data)

    def eof_received(self) -> bool:
        self.eof.set()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(exc)

    def pause_writing(self) -> None:
        self.paused.set()

    def resume_writing(self) -> None:
        self.resumed.set()


class Server:
    def __init__(self) -> None:
        self.apps: list[App] = []
        self.errors: list[TlsHandshakeError] = []
        self.error_event = asyncio.Event()
        self.app_made = asyncio.Event()
        self.port = 0

    async def first_app(self) -> App:
        await self.app_made.wait()
        await self.apps[0].made
        return self.apps[0]

    def app_factory(self, **kw):
        def make() -> App:
            app = App(**kw)
            self.apps.append(app)
            self.app_made.set()
            return app

        return make

    def on_error(self, exc, peername):
        assert peername is None or peername[0] == "127.0.0.1"
        self.errors.append(exc)
        self.error_event.set()


@contextlib.asynccontextmanager
async def tls_server(ctx: SSL.Context, *, handshake_timeout: float = T, echo: bool = True) -> AsyncIterator[Server]:
    state = Server()
    loop = asyncio.get_running_loop()
    factory = create_tls_server_protocol(
        ctx, state.app_factory(echo=echo), handshake_timeout=handshake_timeout, on_handshake_error=state.on_error
    )
    server = await loop.create_server(factory, "127.0.0.1", 0)
    state.port = server.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        server.close()
        for app in state.apps:
            if app.transport is not None:
                app.transport.abort()
        await server.wait_closed()


def stdlib_client_ctx(root) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cadata=root.cert_pem)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


async def test_python_ssl_client_roundtrip_and_close_notify(pki):
    root, _, server_id = pki
    async with tls_server(server_context(server_id, alpn=[b"http/1.1"])) as srv:
        async with asyncio.timeout(T):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", srv.port, ssl=stdlib_client_ctx(root), server_hostname="example.test"
            )
            writer.write(b"ping")
            assert await reader.readexactly(4) == b"ping"
            app = srv.apps[0]
            transport = await app.made
            info = transport.get_extra_info("tls")
            assert (info.sni, info.alpn) == ("example.test", "http/1.1")
            assert transport.get_extra_info("peername")[0] == "127.0.0.1"
            assert transport.get_extra_info("socket") is not None
            assert transport.get_extra_info("peercert") is None
            writer.close()  # sends close_notify
            await app.eof.wait()
            assert await app.lost is None
            assert info.close_notify_received


async def test_server_close_sends_close_notify(pki):
    root, _, server_id = pki
    async with tls_server(server_context(server_id)) as srv:
        async with asyncio.timeout(T):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", srv.port, ssl=stdlib_client_ctx(root), server_hostname="example.test"
            )
            writer.write(b"x")
            await reader.readexactly(1)
            transport = await srv.apps[0].made
            transport.write(b"bye")
            transport.close()
            assert transport.is_closing()
            assert await reader.read() == b"bye"  # then a clean EOF: the close_notify arrived
            assert await srv.apps[0].lost is None
            writer.close()


async def test_openssl_s_client(pki, tmp_path):
    root, _, server_id = pki
    ca = tmp_path / "ca.pem"
    ca.write_bytes(root.cert_pem.encode())
    async with tls_server(server_context(server_id)) as srv:
        async with asyncio.timeout(T):
            proc = await asyncio.create_subprocess_exec(
                "openssl", "s_client", "-connect", f"127.0.0.1:{srv.port}", "-servername", "example.test",
                "-CAfile", str(ca), "-verify_return_error", "-quiet",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
            try:
                proc.stdin.write(b"hello from s_client\n")
                await proc.stdin.drain()
                line = await proc.stdout.readline()
                assert line == b"hello from s_client\n", await proc.stderr.read()
                # -quiet implies -ign_eof: s_client leaves when the server closes (close_notify).
                transport = await srv.apps[0].made
                transport.close()
                assert await proc.stdout.read() == b""
                await proc.wait()
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
            app = srv.apps[0]
            assert app.transport is not None
            assert app.transport.get_extra_info("tls").sni == "example.test"
            assert await app.lost is None


async def test_client_side_to_python_ssl_server(pki):
    root, _, server_id = pki
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert_file, key_file = _write_identity(server_id)
    sctx.load_cert_chain(cert_file, key_file)
    sctx.set_alpn_protocols(["http/1.1"])
    sni: list[str | None] = []
    sctx.sni_callback = lambda sslobj, name, ctx: sni.append(name)
    received: asyncio.Queue[tuple[bytes, str | None]] = asyncio.Queue()

    async def handle(reader, writer):
        data = await reader.readexactly(5)
        await received.put((data, sni[-1]))
        writer.write(data.upper())
        await writer.drain()
        writer.close()  # close_notify towards our client

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=sctx)
    port = server.sockets[0].getsockname()[1]
    try:
        async with asyncio.timeout(T):
            loop = asyncio.get_running_loop()
            transport, app = await open_tls_connection(
                loop, "127.0.0.1", port, client_context([root]), "example.test", lambda: App(echo=False),
                alpn_protocols=["http/1.1"], verify=True, verify_hostname="example.test",
            )  # fmt: skip
            assert isinstance(app, App)
            info = transport.get_extra_info("tls")
            assert (info.sni, info.alpn, info.verify_code) == ("example.test", "http/1.1", 0)
            assert [c.subject for c in transport.get_extra_info("peercert_chain")] == [
                c.subject for c in server_id.chain
            ]
            transport.write(b"hello")
            assert await received.get() == (b"hello", "example.test")
            await app.eof.wait()
            assert bytes(app.data) == b"HELLO"
            assert await app.lost is None
            assert info.close_notify_received
    finally:
        server.close()
        await server.wait_closed()


def _write_identity(identity):
    import tempfile

    d = tempfile.mkdtemp()
    cert, key = f"{d}/cert.pem", f"{d}/key.pem"
    with open(cert, "wb") as f:
        f.write(identity.chain_pem.encode())
    with open(key, "wb") as f:
        f.write(identity.key_pem.encode())
    return cert, key


@pytest.mark.parametrize(("trust", "code"), [("other", 20), ("none", 20), ("lone", 21)])
async def test_client_side_verify_failure_carries_the_code(pki, trust, code):
    root, _, server_id = pki
    other = make_ca("Other", key_type="ec")
    identity = make_cert("example.test", root, key_type="ec") if trust == "lone" else server_id
    trusted = {"other": [other], "none": [], "lone": [other]}[trust]
    async with tls_server(server_context(identity)) as srv:
        async with asyncio.timeout(T):
            with pytest.raises(TlsHandshakeError) as info:
                await open_tls_connection(
                    asyncio.get_running_loop(), "127.0.0.1", srv.port, client_context(trusted), "example.test",
                    App, verify=True,
                )  # fmt: skip
            assert (info.value.kind, info.value.verify_code) == ("verify", code)
            # nginx completes the handshake, then drops the connection: the server saw a full handshake.
            assert srv.errors == []


async def test_garbage_then_good_client(pki):
    root, _, server_id = pki
    async with tls_server(server_context(server_id)) as srv:
        async with asyncio.timeout(T):
            reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
            writer.write(b"GET / HTTP/1.1\r\nHost: example.test\r\n\r\n")
            await srv.error_event.wait()
            assert srv.errors[0].kind == "protocol"
            rest = await reader.read()  # the alert (if any), then EOF: the server closed the socket
            assert len(rest) < 64
            writer.close()
            assert srv.apps == []  # no app protocol for a failed handshake
            r2, w2 = await asyncio.open_connection(
                "127.0.0.1", srv.port, ssl=stdlib_client_ctx(root), server_hostname="example.test"
            )
            w2.write(b"ok")
            assert await r2.readexactly(2) == b"ok"
            w2.close()


async def test_stalled_handshake_times_out_while_others_are_served(pki):
    root, _, server_id = pki
    async with tls_server(server_context(server_id), handshake_timeout=0.5) as srv:
        async with asyncio.timeout(T):
            stalled_r, stalled_w = await asyncio.open_connection("127.0.0.1", srv.port)
            stalled_w.write(b"\x16\x03\x01\x02\x00\x01")  # a ClientHello that never completes
            r, w = await asyncio.open_connection(
                "127.0.0.1", srv.port, ssl=stdlib_client_ctx(root), server_hostname="example.test"
            )
            w.write(b"served")
            assert await r.readexactly(6) == b"served"
            await srv.error_event.wait()
            assert [e.kind for e in srv.errors] == ["timeout"]
            with contextlib.suppress(ConnectionError):
                assert await stalled_r.read() == b""  # aborted by the server
            stalled_w.close()
            w.write(b"still")
            assert await r.readexactly(5) == b"still"
            w.close()


async def test_peer_eof_mid_handshake_is_reported(pki):
    _, _, server_id = pki
    async with tls_server(server_context(server_id)) as srv:
        async with asyncio.timeout(T):
            _, w = await asyncio.open_connection("127.0.0.1", srv.port)
            w.write(b"\x16\x03\x01\x02\x00\x01")
            await w.drain()
            w.close()
            await srv.error_event.wait()
            assert srv.errors[0].kind == "eof"


async def test_abrupt_close_after_handshake_is_a_normal_end(pki):
    root, _, server_id = pki
    async with tls_server(server_context(server_id)) as srv:
        async with asyncio.timeout(T):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", srv.port, ssl=stdlib_client_ctx(root), server_hostname="example.test"
            )
            writer.write(b"hi")
            await reader.readexactly(2)
            writer.transport.abort()  # TCP close, no close_notify
            app = srv.apps[0]
            await app.eof.wait()
            assert await app.lost is None
            assert app.transport is not None
            assert not app.transport.get_extra_info("tls").close_notify_received


async def test_backpressure_pauses_and_resumes_the_app(pki):
    root, _, server_id = pki
    async with tls_server(server_context(server_id), echo=False) as srv:
        async with asyncio.timeout(T):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", srv.port, ssl=stdlib_client_ctx(root), server_hostname="example.test", limit=2**26
            )
            writer.write(b"go")
            app = await srv.first_app()
            transport = await app.made
            await app.got_data.wait()
            transport.set_write_buffer_limits(high=65536, low=16384)
            assert transport.get_write_buffer_limits() == (16384, 65536)
            chunk = b"x" * 65536
            sent = 0
            while not app.paused.is_set():  # the client is not reading: the socket buffers fill up
                transport.writelines([chunk, chunk])
                sent += 2 * len(chunk)
                if sent > 256 * 2**20:
                    pytest.fail("pause_writing never came")
                await asyncio.sleep(0)  # let the loop flush and report; not a readiness wait
            assert transport.get_write_buffer_size() > 0
            assert not app.resumed.is_set()
            assert len(await reader.readexactly(sent)) == sent  # reading drains the buffers
            await app.resumed.wait()
            writer.close()


async def test_app_pause_reading_pauses_the_socket(pki):
    root, _, server_id = pki
    async with tls_server(server_context(server_id), echo=False) as srv:
        async with asyncio.timeout(T):
            _reader, writer = await asyncio.open_connection(
                "127.0.0.1", srv.port, ssl=stdlib_client_ctx(root), server_hostname="example.test"
            )
            writer.write(b"first")
            app = await srv.first_app()
            transport = await app.made
            await app.got_data.wait()
            transport.pause_reading()
            assert not transport.is_reading()
            tls_protocol = transport._tls
            assert isinstance(tls_protocol, TlsProtocol)
            assert tls_protocol._raw is not None
            assert not tls_protocol._raw.is_reading()
            app.got_data.clear()
            writer.write(b"second")
            await writer.drain()
            transport.resume_reading()
            assert transport.is_reading()
            while bytes(app.data) != b"firstsecond":
                app.got_data.clear()
                await app.got_data.wait()
            writer.close()
            await app.lost
