"""The floor: the least a Python proxy costs per request with this stack, measured next to the gateway and nginx.

    python -m benchmarks.floor PORT UPSTREAM_PORT [--cert CHAIN --key KEY [--full-handshakes]]
                               [--upstream-tls --ca ROOT --client-cert CHAIN --client-key KEY --upstream-name NAME]

What it is: uvloop + httptools + pyOpenSSL, the gateway's own libraries, doing only what a keepalive proxy of GET
requests must: parse the request, send a fixed head on an upstream connection (one per client while it lasts, then
back to a shared pool of idle ones, as nginx's ``keepalive``), buffer the response until it is complete and write it
back; a request that says ``Connection: close`` (S5) is answered, then the connection closed (TLS: with a
close_notify). ``--full-handshakes`` turns the session cache and tickets off, as S5 configures nginx and the
gateway. TLS is pyOpenSSL with the socket itself as the BIO (``SSL_set_fd``): handshakes
through the public API (the upstream verified against ``--ca`` and ``--upstream-name``, with a client certificate,
as the S3 service), application data through direct ``SSL_read``/``SSL_write`` calls. The measured floor
(docs/architecture.md) found that the fastest Python TLS data path, on par with nginx per request.

What it is not: a proxy. No routing, no header policy, no bodies, no limits, no timeouts, no logs; a failure
closes the connection. The gateway does all of that, so ``gateway / floor`` in a report is the cost of Kong's
semantics plus our own overhead, and ``floor / nginx`` what Python and this TLS engine cost at the least.

It reaches pyOpenSSL's internals through ``gateway.tls.engine.raw.check_internals`` (the same import-time check
as the gateway), and keeps its own loop because the gateway's data path uses memory BIOs (``docs/architecture.md``
says why). SIGTERM or SIGINT stop it.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
from collections.abc import Callable
from typing import Any, Protocol

import httptools
import uvloop
from OpenSSL import SSL

from gateway.tls.engine.hostnames import check_host
from gateway.tls.engine.raw import OP_NO_RENEGOTIATION, check_internals

_lib, _ffi = check_internals()
_SIZE = 65536
_RBUF = _ffi.new("char[]", _SIZE)
_RVIEW = _ffi.buffer(_RBUF)
_SSL_read, _SSL_write, _SSL_get_error, _SSL_pending = (
    _lib.SSL_read,
    _lib.SSL_write,
    _lib.SSL_get_error,
    _lib.SSL_pending,
)
_WANT_READ, _WANT_WRITE = _lib.SSL_ERROR_WANT_READ, _lib.SSL_ERROR_WANT_WRITE


class Sink(Protocol):
    """What the HTTP side writes to: a uvloop transport (plain) or a ``TlsSocket``."""

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...


class App(Protocol):
    def connection_made(self, sink: Any) -> None: ...

    def data_received(self, data: bytes) -> None: ...

    def connection_lost(self, exc: Exception | None) -> None: ...


class TlsSocket:
    """One TLS connection on a non-blocking socket, driven by ``add_reader``/``add_writer``; no asyncio transport."""

    __slots__ = (
        "app",
        "closed",
        "conn",
        "fd",
        "handshaken",
        "loop",
        "on_ready",
        "pending",
        "sock",
        "ssl",
        "verify_name",
        "writing",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        conn: SSL.Connection,
        app: App,
        on_ready: Callable[[TlsSocket | None], None] | None = None,
        verify_name: str = "",
    ) -> None:
        self.loop, self.sock, self.fd, self.conn, self.app = loop, sock, sock.fileno(), conn, app
        self.verify_name = verify_name
        self.ssl = conn._ssl
        self.on_ready = on_ready
        self.handshaken = self.closed = self.writing = False
        self.pending: list[bytes] = []
        loop.add_reader(self.fd, self._readable)
        if on_ready is not None:
            self._handshake()

    def _handshake(self) -> bool:
        try:
            self.conn.do_handshake()
        except SSL.WantReadError:
            return False
        except SSL.WantWriteError:
            self._want_write()
            return False
        except (SSL.Error, OSError):
            self.close()
            return False
        if self.on_ready is not None and not self._upstream_checked():
            return False
        self.handshaken = True
        self.app.connection_made(self)
        if self.pending:
            self._writable()
        return True

    def _upstream_checked(self) -> bool:
        """Client side: the chain verified (the context enforces it) and the name matches, as nginx's checks."""
        on_ready, self.on_ready = self.on_ready, None
        assert on_ready is not None
        cert = self.conn.get_peer_certificate()
        if cert is None or not check_host(cert.to_cryptography(), self.verify_name):
            self.close()
            on_ready(None)
            return False
        on_ready(self)
        return True

    def _readable(self) -> None:
        if not self.handshaken and not self._handshake():
            return
        ssl, app = self.ssl, self.app
        while not self.closed:
            n = _SSL_read(ssl, _RBUF, _SIZE)
            if n > 0:
                app.data_received(_RVIEW[:n])
                if not _SSL_pending(ssl):
                    return  # the socket BIO reads no further ahead: nothing more in OpenSSL now
                continue
            code = _SSL_get_error(ssl, n)
            if code == _WANT_READ:
                return
            if code == _WANT_WRITE:
                self._want_write()
                return
            _lib.ERR_clear_error()
            self.close()
            return

    def write(self, data: bytes) -> None:
        if self.closed:
            return
        if self.pending or not self.handshaken:
            self.pending.append(data)
            return
        n = _SSL_write(self.ssl, data, len(data))
        if n == len(data):
            return
        if n <= 0:
            if _SSL_get_error(self.ssl, n) in (_WANT_READ, _WANT_WRITE):
                self.pending.append(data)  # OpenSSL wants the same buffer again
                self._want_write()
                return
            _lib.ERR_clear_error()
            self.close()
            return
        self.pending.append(data[n:])
        self._want_write()

    def _want_write(self) -> None:
        if not self.writing:
            self.writing = True
            self.loop.add_writer(self.fd, self._writable)

    def _writable(self) -> None:
        if not self.handshaken:
            self._handshake()
            return
        while self.pending and not self.closed:
            data = self.pending[0]
            n = _SSL_write(self.ssl, data, len(data))
            if n <= 0:
                if _SSL_get_error(self.ssl, n) in (_WANT_READ, _WANT_WRITE):
                    self._want_write()
                    return
                _lib.ERR_clear_error()
                self.close()
                return
            if n < len(data):
                self.pending[0] = data[n:]
            else:
                self.pending.pop(0)
        if self.writing and not self.closed:
            self.writing = False
            self.loop.remove_writer(self.fd)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.loop.remove_reader(self.fd)
        if self.writing:
            self.loop.remove_writer(self.fd)
        try:
            self.conn.shutdown()
        except (SSL.Error, OSError):
            pass
        self.sock.close()
        if self.handshaken:
            self.app.connection_lost(None)
        elif self.on_ready is not None:
            on_ready, self.on_ready = self.on_ready, None
            on_ready(None)


class PlainAdapter(asyncio.Protocol):
    """A uvloop transport in front of an ``App`` (the transport is the app's sink)."""

    def __init__(self, app: App, on_ready: Callable[[Any], None] | None = None) -> None:
        self.app, self.on_ready = app, on_ready

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.app.connection_made(transport)
        if self.on_ready is not None:
            self.on_ready(transport)

    def data_received(self, data: bytes) -> None:
        self.app.data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.app.connection_lost(exc)


class Upstream:
    """The response side: buffers the upstream's response until it is complete, then one write downstream."""

    def __init__(self, down: Downstream) -> None:
        self.down: Downstream | None = down  # None while idle in the pool
        self.parser = httptools.HttpResponseParser(self)
        self.parts: list[bytes] = []
        self.sink: Sink | None = None
        self.outstanding = 0  # requests sent whose responses are not complete (a client may pipeline)

    def connection_made(self, sink: Any) -> None:
        self.sink = sink

    def data_received(self, data: bytes) -> None:
        self.parts.append(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.outstanding = -1  # never reusable
            if self.down is not None:
                self.down.close()

    def send(self, head: bytes) -> None:
        assert self.sink is not None
        if self.outstanding >= 0:
            self.outstanding += 1
        self.sink.write(head)

    def on_message_complete(self) -> None:
        data = b"".join(self.parts)
        self.parts = []
        if self.outstanding > 0:
            self.outstanding -= 1
        down = self.down
        if down is not None and down.sink is not None:
            if down.close_after:  # the client's ``Connection: close`` answered in kind, as any proxy must
                down.sink.write(data.replace(b"\r\nConnection: keep-alive\r\n", b"\r\nConnection: close\r\n", 1))
                down.close()
            else:
                down.sink.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.sink = None
        if self.down is not None:
            self.down.close()


class Pool:
    """Idle upstream connections shared by every client (nginx's ``keepalive``): a client takes one for its life,
    and gives it back when it closes with no response outstanding; ``open_one`` makes a new one when none is idle."""

    def __init__(self, open_one: Callable[[Downstream], None], size: int = 512) -> None:
        self.open_one, self.size = open_one, size
        self.idle: list[Upstream] = []

    def take(self, down: Downstream) -> None:
        while self.idle:
            up = self.idle.pop()
            if up.sink is not None:
                up.down = down
                down.upstream_ready(up, up.sink)
                return
        self.open_one(down)

    def give(self, up: Upstream) -> None:
        up.down = None
        if up.sink is None:
            return
        if up.outstanding or len(self.idle) >= self.size:
            up.sink.close()
        else:
            self.idle.append(up)


class Downstream:
    """The request side: parses requests and forwards a fixed head on the upstream connection the pool gave it."""

    def __init__(self, pool: Pool, host: bytes) -> None:
        self.pool = pool  # gives this client an upstream connection, then calls ``upstream_ready``
        self.host = host
        self.parser = httptools.HttpRequestParser(self)
        self.sink: Sink | None = None
        self.up: Upstream | None = None
        self.url = b""
        self.waiting: list[bytes] | None = None
        self.close_after = False  # the request said ``Connection: close`` (or HTTP/1.0 without keepalive)

    def connection_made(self, sink: Any) -> None:
        self.sink = sink

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.close()

    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_message_complete(self) -> None:
        head = b"GET %b HTTP/1.1\r\nHost: %b\r\nX-Forwarded-Proto: https\r\n\r\n" % (self.url, self.host)
        self.close_after = not self.parser.should_keep_alive()
        up = self.up
        if up is not None and up.sink is not None:
            up.send(head)
        elif self.waiting is not None:
            self.waiting.append(head)
        else:
            self.waiting = [head]
            self.pool.take(self)

    def upstream_ready(self, up: Upstream, sink: Sink | None) -> None:
        waiting, self.waiting = self.waiting or [], None
        if sink is None:
            self.close()
            return
        self.up = up
        up.sink = sink  # a TLS upstream reports itself ready before its ``connection_made``
        for head in waiting:
            up.send(head)

    def close(self) -> None:
        sink, self.sink = self.sink, None
        if sink is not None:
            sink.close()
        up, self.up = self.up, None
        if up is not None:
            self.pool.give(up)

    def connection_lost(self, exc: Exception | None) -> None:
        self.sink = None
        self.close()


# ------------------------------------------------------------------------------------------------- contexts, main


def server_context(chain: str, key: str, full_handshakes: bool = False) -> SSL.Context:
    ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
    ctx.set_options(OP_NO_RENEGOTIATION | SSL.OP_NO_COMPRESSION)
    if full_handshakes:  # no session to resume: every handshake a full one (S5)
        ctx.set_options(SSL.OP_NO_TICKET)
        ctx.set_session_cache_mode(SSL.SESS_CACHE_OFF)
    ctx.use_certificate_chain_file(chain)
    ctx.use_privatekey_file(key)
    return ctx


def client_context(ca: str, chain: str | None, key: str | None) -> SSL.Context:
    """Verifies the upstream's chain against ``ca`` (the handshake fails otherwise), with a client certificate."""
    ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
    ctx.set_options(OP_NO_RENEGOTIATION | SSL.OP_NO_COMPRESSION)
    ctx.load_verify_locations(ca)
    ctx.set_verify(SSL.VERIFY_PEER, lambda _conn, _cert, _errno, _depth, ok: bool(ok))
    if chain and key:
        ctx.use_certificate_chain_file(chain)
        ctx.use_privatekey_file(key)
    return ctx


def _nodelay(sock: socket.socket) -> socket.socket:
    sock.setblocking(False)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def upstream_connector(
    loop: asyncio.AbstractEventLoop, port: int, ctx: SSL.Context | None, name: str
) -> Callable[[Downstream], None]:
    """``connect(down)``: a new upstream connection (TLS when ``ctx``) for one client; ``down.upstream_ready``."""

    def connect(down: Downstream) -> None:
        up = Upstream(down)
        if ctx is None:
            task = loop.create_task(
                loop.create_connection(
                    lambda: PlainAdapter(up, lambda sink: down.upstream_ready(up, sink)), "127.0.0.1", port
                )
            )

            def failed(task: asyncio.Task[Any]) -> None:
                if task.cancelled() or task.exception() is not None:
                    down.upstream_ready(up, None)

            task.add_done_callback(failed)
            return
        sock = _nodelay(socket.socket())
        done = loop.create_task(loop.sock_connect(sock, ("127.0.0.1", port)))

        def connected(task: asyncio.Task[None]) -> None:
            if task.cancelled() or task.exception() is not None:
                sock.close()
                down.upstream_ready(up, None)
                return
            conn = SSL.Connection(ctx, sock)
            conn.set_tlsext_host_name(name.encode("idna"))
            conn.set_connect_state()
            TlsSocket(loop, sock, conn, up, lambda sink: down.upstream_ready(up, sink), verify_name=name)

        done.add_done_callback(connected)

    return connect


async def serve(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    up_ctx = client_context(args.ca, args.client_cert, args.client_key) if args.upstream_tls else None
    pool = Pool(upstream_connector(loop, args.upstream_port, up_ctx, args.upstream_name))
    host = args.upstream_name.encode("idna")
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if args.cert is None:
        server = await loop.create_server(
            lambda: PlainAdapter(Downstream(pool, host)), "127.0.0.1", args.port, backlog=1024
        )
        await stop.wait()
        server.close()
        return
    ctx = server_context(args.cert, args.key, args.full_handshakes)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", args.port))
    listener.listen(1024)
    listener.setblocking(False)

    def on_accept() -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            conn = SSL.Connection(ctx, _nodelay(sock))
            conn.set_accept_state()
            TlsSocket(loop, sock, conn, Downstream(pool, host))

    loop.add_reader(listener.fileno(), on_accept)
    await stop.wait()
    loop.remove_reader(listener.fileno())
    listener.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("port", type=int)
    parser.add_argument("upstream_port", type=int)
    parser.add_argument("--cert", help="the served chain (PEM): TLS downstream")
    parser.add_argument("--key", help="its key")
    parser.add_argument("--full-handshakes", action="store_true", help="no session cache, no tickets (S5)")
    parser.add_argument("--upstream-tls", action="store_true")
    parser.add_argument("--ca", help="the upstream's trust anchor")
    parser.add_argument("--client-cert", help="the client chain presented upstream")
    parser.add_argument("--client-key")
    parser.add_argument("--upstream-name", default="localhost", help="SNI, Host and the name the upstream must match")
    args = parser.parse_args(argv)
    if (args.cert is None) != (args.key is None):
        parser.error("--cert and --key go together")
    if args.upstream_tls and not args.ca:
        parser.error("--upstream-tls needs --ca")
    uvloop.run(serve(args))


if __name__ == "__main__":
    main()
