"""The per-connection Python of S5 (a new TLS connection per request), measured in-process: no sockets, no peers.

    python -m benchmarks.inprocess_handshake [--connections 2000] [--rounds 5] [--key rsa|ecdsa] [--cprofile] [--floor]

Drives the gateway's real stack with S5's traffic over in-memory transports, one connection after the other: a
fresh client TLS session (the stdlib ``ssl`` over memory BIOs, as wrk: TLS 1.3, no verification, no session to
resume) -> the ``ssl`` listener's ``FirstBytes`` -> ``TlsProtocol``/``TlsTransport`` (server side, session tickets
and the session cache off, as ``start_gateway`` configures S5: every handshake is a full one) ->
``HttpToolsProtocol`` -> ``Exchange`` -> pool -> the plain-HTTP upstream connection, opened once and pooled as in
S5 (and S1: ``benchmarks.inprocess``), answering nginx's 24-byte response. The client's request says
``Connection: close``, so the gateway answers it, sends its close_notify with the response and closes the socket,
and the transport then reports ``connection_lost(None)`` as uvloop's does once its buffer is flushed. The server
certificate is the benchmarks' (``benchmarks.pki``), RSA-2048 or ECDSA P-256 (``--key``, S5-rsa or S5-ecdsa).

Each connection is served synchronously (what one side wrote is handed to the other as soon as the call returns),
and only the gateway's calls are timed: accepting the socket (the listener's protocol factory and
``connection_made``), the ClientHello, the client's Finished with the request, the upstream's response, and
``connection_lost``, each between two ``time.process_time_ns()`` reads. The client's handshake and decryption happen
between those calls and stay out, and so does the upstream. So the figure is the CPU the gateway spends per
connection, handshake (OpenSSL's signature included) and request together, with the syscalls, the event loop and
the peers taken away. Every connection is checked outside the timing: its request reached the pooled upstream
connection, the client decrypted one ``200`` with the upstream's body and a close_notify, the gateway closed the
socket; and after each round the state holds no more open connections than before it, and the upstream was opened
once.

Prints process CPU microseconds per connection (best and median of the rounds); with ``--cprofile``, the gateway's
functions by own time and calls per connection (``benchmarks.profile.per_request``), profiled around the same
calls. With RSA most of it is the server's signature, inside OpenSSL: a change to the Python around the handshake
shows better in ``--key ecdsa``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import ssl
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from OpenSSL import SSL

from benchmarks import bare_handshake
from benchmarks.inprocess import LOOP_EVERY
from benchmarks.inprocess_tls import MemoryTransport, TlsPeer, tls_listener_settings
from benchmarks.pki import Pki, make_pki
from benchmarks.profile import per_request
from gateway.observability.accesslog import AccessLog
from gateway.observability.errorlog import ErrorLog
from gateway.proxy.state import ProxyState
from gateway.runtime.snapshot import build_snapshot
from gateway.settings import Listener
from gateway.tls.served.certificates import base_context, make_sni_callback
from gateway.upstream.connection import UpstreamConnection
from gateway.upstream.service import ServiceTarget

__all__ = ["FloorServer", "Harness", "main"]

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8443\r\nConnection: close\r\n\r\n"
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sun, 22 Nov 2026 10:00:00 GMT\r\n"
    b"Content-Type: application/octet-stream\r\nContent-Length: 24\r\nConnection: keep-alive\r\n\r\n"
    b"hello from the upstream\n"
)
BODY = b"hello from the upstream\n"
SERVICE = {
    "id": "11111111-1111-1111-1111-111111111111",
    "name": "bench",
    "protocol": "http",
    "host": "127.0.0.1",
    "port": 9000,
}
ROUTE = {"id": "22222222-2222-2222-2222-222222222222", "paths": ["/"], "service": {"id": SERVICE["id"]}}
WARM_CONNECTIONS = 200


def _client_context() -> ssl.SSLContext:
    """wrk's: no verification, TLS 1.3, and nothing to resume (each connection gets a fresh ``TlsPeer``)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.options |= ssl.OP_NO_TICKET
    return context


def _decrypt(peer: TlsPeer) -> tuple[bytes, bool]:
    """All the plaintext the client's incoming ciphertext holds, and whether it ended with a close_notify."""
    parts: list[bytes] = []
    while True:
        try:
            chunk = peer.obj.read(65536)
        except ssl.SSLWantReadError:
            return b"".join(parts), False
        except ssl.SSLZeroReturnError:
            return b"".join(parts), True
        if not chunk:
            return b"".join(parts), True
        parts.append(chunk)


class Harness:
    """An ``ssl`` listener accepting one in-memory connection after the other, and one pooled plain upstream."""

    def __init__(self, prefix: Path, pki: Pki) -> None:
        # S5: every handshake a full one (``scenarios.start_gateway`` with ``full_handshakes``)
        settings = tls_listener_settings(prefix, pki, ssl_session_tickets="off", ssl_session_cache_size="0")
        snapshot = build_snapshot({"services": [SERVICE], "routes": [ROUTE]}, settings)
        for service in snapshot.services.values():
            service.connect = self._connect
        self.state = ProxyState(settings, ErrorLog(None, stream=io.StringIO()), AccessLog(None), snapshot)
        listener = settings.proxy_listen[0]
        assert isinstance(listener, Listener) and listener.ssl
        self.accept = self.state.protocol_factory(listener)
        self.client_context = _client_context()
        self.response = RESPONSE  # what the upstream answers (a test changes it)
        self.upstream: MemoryTransport | None = None
        self.upstream_protocol: UpstreamConnection | None = None
        self.upstreams_opened = 0
        self.connections = 0  # served so far: each gets its own client port
        self.cpu_ns = 0  # process CPU spent in the gateway's calls
        self.profiler: cProfile.Profile | None = None  # set: the calls are profiled instead of timed

    async def _connect(
        self, loop: asyncio.AbstractEventLoop, up: UpstreamConnection, ip: str, port: int, svc: ServiceTarget, host: str
    ) -> tuple[asyncio.BaseTransport, asyncio.BaseProtocol]:
        """The service's connector: an in-memory socket to the upstream (once: later requests find it pooled)."""
        transport = MemoryTransport({"peername": (ip, port), "sockname": ("127.0.0.1", 50000)})
        transport.set_protocol(up)
        self.upstream, self.upstream_protocol = transport, up
        self.upstreams_opened += 1
        up.connection_made(transport)
        return transport, up

    def open_connections(self) -> int:
        """The connections the state holds: registered HTTP connections and sockets still handshaking."""
        return len(self.state.connections) + len(self.state.pending)

    def _gateway(self, call: Callable[[Any], object], arg: Any) -> None:
        """One call into the gateway, timed (or profiled)."""
        profiler = self.profiler
        flush = self.state.tick_writes.run  # the end of the loop's tick: the writes held in it leave
        if profiler is not None:
            profiler.enable()
            call(arg)
            flush()
            profiler.disable()
            return
        start = time.process_time_ns()
        call(arg)
        flush()
        self.cpu_ns += time.process_time_ns() - start

    def _accepted(self, transport: MemoryTransport) -> None:
        """What the listening socket does on accept: a protocol from the listener's factory, ``connection_made``."""
        protocol = self.accept()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)

    def _open(self) -> tuple[MemoryTransport, TlsPeer]:
        """A new client connects and sends its ClientHello; the gateway answers with its flight."""
        self.connections += 1
        port = 10000 + self.connections % 50000
        transport = MemoryTransport({"peername": ("127.0.0.1", port), "sockname": ("127.0.0.1", 8443)})
        client = TlsPeer(self.client_context, server_side=False)
        client.handshake()
        hello = client.outgoing.read()
        self._gateway(self._accepted, transport)
        self._gateway(transport.get_protocol().data_received, hello)  # type: ignore[attr-defined]
        return transport, client

    def _request(self, transport: MemoryTransport, client: TlsPeer) -> None:
        """The client completes its handshake and sends the request: its Finished and the request, one read."""
        client.incoming.write(transport.take())
        client.handshake()
        if not client.established:
            raise RuntimeError("the client's handshake did not complete on the gateway's flight")
        client.obj.write(REQUEST)
        self._gateway(transport.get_protocol().data_received, client.outgoing.read())  # type: ignore[attr-defined]

    def _respond(self, transport: MemoryTransport) -> None:
        """The pooled upstream answers the request it received; the gateway answers and closes, the socket goes."""
        upstream, protocol = self.upstream, self.upstream_protocol
        if upstream is None or protocol is None or not upstream.written:
            raise RuntimeError("a request did not reach the pooled upstream connection")
        sent = upstream.take()
        if not sent.startswith(b"GET / HTTP/1.1\r\n") or not sent.endswith(b"\r\n\r\n"):
            raise RuntimeError(f"the upstream did not receive a whole request: {sent!r}")
        self._gateway(protocol.data_received, self.response)
        if not transport.closing:
            raise RuntimeError("the gateway did not close the connection after a Connection: close request")
        self._gateway(transport.get_protocol().connection_lost, None)

    @staticmethod
    def _check(transport: MemoryTransport, client: TlsPeer) -> None:
        """The client decrypts what the gateway wrote: one 200 with the upstream's body, then a close_notify."""
        client.incoming.write(transport.take())
        received, close_notify = _decrypt(client)
        if not received.startswith(b"HTTP/1.1 200 OK\r\n") or not received.endswith(b"\r\n\r\n" + BODY):
            raise RuntimeError(f"unexpected response: {received!r}")
        if received.count(b"HTTP/1.1 ") != 1:
            raise RuntimeError(f"more than one response on a connection: {received!r}")
        if not close_notify:
            raise RuntimeError("the response was not followed by a close_notify")

    async def serve(self, count: int) -> None:
        """``count`` connections, one request each, all synchronous (the upstream connection is pooled already);
        the loop turns every ``LOOP_EVERY`` connections, untimed (``benchmarks.inprocess`` says why)."""
        before = self.open_connections()
        for done in range(1, count + 1):
            transport, client = self._open()
            self._request(transport, client)
            self._respond(transport)
            self._check(transport, client)
            if done % LOOP_EVERY == 0:
                await asyncio.sleep(0)
        after = self.open_connections()
        if after != before:
            raise RuntimeError(f"the gateway holds {after - before} connections more than before {count} closed")
        if self.upstreams_opened != 1:
            raise RuntimeError(f"{self.upstreams_opened} upstream connections opened: the pool was not used")

    async def warm_up(self) -> None:
        """The first connection: its request opens the upstream connection (a task); later ones find it pooled."""
        before = self.open_connections()
        transport, client = self._open()
        self._request(transport, client)
        for _ in range(1000):
            if self.upstream is not None and self.upstream.written:
                break
            await asyncio.sleep(0)
        self._respond(transport)
        self._check(transport, client)
        await asyncio.sleep(0)
        if self.open_connections() != before:
            raise RuntimeError("the gateway did not release the first connection")

    def close(self) -> None:
        self.state.close()


async def _time(harness: Harness, connections: int, rounds: int) -> list[float]:
    """CPU microseconds per connection, one figure per round (the loop runs between rounds, untimed)."""
    figures = []
    for _ in range(rounds):
        harness.cpu_ns = 0
        await harness.serve(connections)
        figures.append(harness.cpu_ns / connections / 1000)
        await asyncio.sleep(0)
    return figures


class FloorServer:
    """The in-process floor for the same traffic (``--floor``): a bare pyOpenSSL server over memory BIOs on the
    gateway's own listener context (its TLS profile, default certificate and SNI callback), answering each request
    with a fixed response and a close_notify: no HTTP parsing, routing, upstream, timers or logs. Same client, same
    timing (the server's calls only). It executes nearly the gateway's instructions per connection (the request path
    is ~1% of them) yet costs ~100 us less: what the gateway's Python costs on the caches a handshake leaves
    (TUNING.md, "S5, the request path runs cold")."""

    def __init__(self, harness: Harness) -> None:
        state = harness.state
        index = state.snapshot.certificates
        assert index is not None
        callback = make_sni_callback(lambda: index, state.error_log)
        self.context = base_context(state.settings, index, sni_callback=callback)
        self.client_context = harness.client_context
        self.cpu_ns = 0

    def connection(self) -> None:
        """One connection: handshake, request, response, close_notify; raises if the client did not get them."""
        client = TlsPeer(self.client_context, server_side=False)
        client.handshake()
        hello = client.outgoing.read()
        began = time.process_time_ns()
        server = SSL.Connection(self.context, None)
        server.set_accept_state()
        flight = bare_handshake.server_flight(server, hello)
        self.cpu_ns += time.process_time_ns() - began
        client.incoming.write(flight)
        client.handshake()
        if not client.established:
            raise RuntimeError("the client's handshake did not complete on the floor's flight")
        client.obj.write(REQUEST)
        flight = client.outgoing.read()  # the client's Finished and the request
        began = time.process_time_ns()
        request, answer = bare_handshake.server_answer(server, flight, bare_handshake.RESPONSE)
        self.cpu_ns += time.process_time_ns() - began
        if request != REQUEST:
            raise RuntimeError(f"the floor read {request!r}")
        client.incoming.write(answer)
        received, close_notify = _decrypt(client)
        if received != bare_handshake.RESPONSE or not close_notify:
            raise RuntimeError(f"the client read {received!r} from the floor (close_notify: {close_notify})")

    async def time(self, connections: int, rounds: int) -> list[float]:
        """CPU microseconds per connection, one figure per round (the loop turns between rounds, as ``_time``)."""
        figures = []
        for _ in range(rounds):
            self.cpu_ns = 0
            for _ in range(connections):
                self.connection()
            figures.append(self.cpu_ns / connections / 1000)
            await asyncio.sleep(0)
        return figures


def _summary(figures: list[float]) -> str:
    return f"CPU per connection best {min(figures):.1f} us, median {statistics.median(figures):.1f} us"


async def _run(connections: int, rounds: int, key: str, profile: bool, floor: bool = False) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        pki = make_pki(Path(tmp) / "pki", key)
        harness = Harness(Path(tmp), pki)
        try:
            await harness.warm_up()
            await _time(harness, WARM_CONNECTIONS, 1)  # warm: the pool, the caches, the allocator
            figures = await _time(harness, connections, rounds)
            print(f"{connections:,} connections x {rounds} rounds ({key}): {_summary(figures)}")
            if floor:
                server = FloorServer(harness)
                await server.time(WARM_CONNECTIONS, 1)
                print(f"the in-process floor, same traffic: {_summary(await server.time(connections, rounds))}")
            if profile:
                profiler = harness.profiler = cProfile.Profile()
                await harness.serve(connections)
                harness.profiler = None
                print(per_request(pstats.Stats(profiler, stream=io.StringIO()), connections, top=60))
        finally:
            harness.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--key", choices=("rsa", "ecdsa"), default="rsa")
    parser.add_argument("--cprofile", action="store_true")
    parser.add_argument("--floor", action="store_true", help="also time the in-process floor (FloorServer)")
    args = parser.parse_args(argv)
    import uvloop

    uvloop.run(_run(args.connections, args.rounds, args.key, args.cprofile, args.floor))


if __name__ == "__main__":
    main()
