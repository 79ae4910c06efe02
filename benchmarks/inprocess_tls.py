"""The per-request Python of S3's TLS data path, measured in-process: no sockets, no load generator, no peer process.

    python -m benchmarks.inprocess_tls [--requests 10000] [--rounds 7] [--cprofile]

Drives the gateway's real stack with S3's traffic over in-memory transports: a client TLS session (the stdlib
``ssl`` over memory BIOs, as wrk: TLS 1.3, keepalive ``GET /``) -> the ``ssl`` listener's ``FirstBytes`` ->
``TlsProtocol``/``TlsTransport`` (server side) -> ``HttpToolsProtocol`` -> ``Exchange`` -> pool -> the real
``connect_tls`` connector (``open_upstream_tls``, so ``TlsProtocol`` client side with the service's verified mTLS
profile: CA, host check, client certificate) -> a server TLS session (the stdlib ``ssl``, requiring the client
certificate) answering nginx's 24-byte response. The certificates are the benchmarks' (``benchmarks.pki``, ECDSA).

Every request is served synchronously (each side's ciphertext is handed on as soon as it was written), so the
figure is the Python the gateway spends per request, TLS both sides included, with the syscalls, the event loop and
the other processes taken away. The peers stay out of it: both sessions are established and keep nothing back, so
the client's request records and the upstream server's response records are encrypted before a round
(``Harness.prepare``), and what the gateway wrote is decrypted and checked after it (``Harness.verify``: every
request reached the upstream whole, every response came back a 200 with the upstream's body). Only
``Harness.run`` is timed: four calls into the gateway per request, as its sockets would make them, and a turn of the
loop every ``LOOP_EVERY`` requests (``benchmarks.inprocess`` says why).

Prints process CPU microseconds per request (best and median of the rounds); with ``--cprofile``, the gateway's
functions by own time and calls per request (``benchmarks.profile.per_request``), TLS engine included. It repeats
within a few percent where a ``benchmarks.compare`` run moves by 10%: it is what to steer by, the compare run is what
to report.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.inprocess import LOOP_EVERY
from benchmarks.pki import Pki, make_pki
from benchmarks.profile import per_request
from gateway.observability.accesslog import AccessLog
from gateway.observability.errorlog import ErrorLog
from gateway.proxy.state import ProxyState
from gateway.runtime.snapshot import build_snapshot
from gateway.settings import Listener, Settings, load_settings

__all__ = ["Harness", "MemoryTransport", "TlsPeer", "main"]

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8443\r\n\r\n"
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sun, 22 Nov 2026 10:00:00 GMT\r\n"
    b"Content-Type: application/octet-stream\r\nContent-Length: 24\r\nConnection: keep-alive\r\n\r\n"
    b"hello from the upstream\n"
)
UPSTREAM_PORT = 9443
CA_ID = "33333333-3333-3333-3333-333333333333"
CERT_ID = "44444444-4444-4444-4444-444444444444"
SERVICE_ID = "11111111-1111-1111-1111-111111111111"
ROUTE = {"id": "22222222-2222-2222-2222-222222222222", "paths": ["/"], "service": {"id": SERVICE_ID}}


class MemoryTransport(asyncio.Transport):
    """A socket transport that keeps what is written (``take``) and knows its protocol (``set_protocol``)."""

    def __init__(self, extra: dict[str, Any]) -> None:
        super().__init__()
        self.extra = extra
        self.written: list[bytes] = []
        self.protocol: asyncio.Protocol | None = None
        self.closing = False
        self.reading = True

    def take(self) -> bytes:
        """Everything written since the last call, as one piece of ciphertext."""
        written = self.written
        if not written:
            return b""
        data = written[0] if len(written) == 1 else b"".join(written)
        written.clear()
        return bytes(data)

    def write(self, data: Any) -> None:
        self.written.append(data)

    def writelines(self, list_of_data: Any) -> None:
        self.written.append(b"".join(list_of_data))

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol  # type: ignore[assignment]

    def get_protocol(self) -> asyncio.BaseProtocol:
        assert self.protocol is not None
        return self.protocol

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def is_reading(self) -> bool:
        return self.reading

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.extra.get(name, default)


class TlsPeer:
    """One end of a stdlib ``ssl`` session over memory BIOs: the load generator's, or the upstream server's."""

    def __init__(self, context: ssl.SSLContext, server_side: bool, server_hostname: str | None = None) -> None:
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.obj = context.wrap_bio(self.incoming, self.outgoing, server_side, server_hostname)
        self.established = False

    def handshake(self) -> None:
        """One handshake step (what has arrived so far); ``established`` says whether it completed."""
        try:
            self.obj.do_handshake()
        except ssl.SSLWantReadError:
            return
        self.established = True

    def read_all(self) -> bytes:
        """All the plaintext the incoming ciphertext holds (b"" when none)."""
        parts = []
        while True:
            try:
                chunk = self.obj.read(65536)
            except ssl.SSLWantReadError:
                break
            if not chunk:
                break
            parts.append(chunk)
        return b"".join(parts)


def _peer_contexts(pki: Pki) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """The client's (wrk: no verification, TLS 1.3 by default) and the upstream server's (requires the client
    certificate, as the S3 upstream does)."""
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(pki.server_chain, pki.server_key)
    server.load_verify_locations(cafile=str(pki.root))
    server.verify_mode = ssl.CERT_REQUIRED
    return client, server


class _MemoryLoop:
    """The running loop, except that ``create_connection`` connects to the in-memory upstream server: so the real
    ``connect_tls`` -> ``open_upstream_tls`` -> ``open_tls_connection`` runs, handshake and checks included."""

    def __init__(self, loop: asyncio.AbstractEventLoop, connected: Callable[[MemoryTransport], None]) -> None:
        self._loop = loop
        self._connected = connected

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loop, name)

    async def create_connection(
        self, factory: Callable[[], asyncio.Protocol], host: str, port: int, **_: Any
    ) -> tuple[MemoryTransport, asyncio.Protocol]:
        transport = MemoryTransport({"peername": (host, port), "sockname": ("127.0.0.1", 50000)})
        protocol = factory()
        transport.set_protocol(protocol)
        self._connected(transport)
        protocol.connection_made(transport)
        return transport, protocol


def tls_listener_settings(prefix: Path, pki: Pki, **extra: str) -> Settings:
    """What the in-process TLS harnesses run with: one ``ssl`` listener serving the benchmarks' certificate, no admin
    listener, no access log, pooled upstream connections never retired; ``extra``: more settings (by name)."""
    overrides = {
        "prefix": str(prefix),
        "proxy_listen": "127.0.0.1:8443 ssl",
        "admin_listen": "off",
        "proxy_access_log": "off",
        "ssl_cert": str(pki.server_chain),
        "ssl_cert_key": str(pki.server_key),
        "upstream_keepalive_max_requests": "1000000000",
    }
    return load_settings(env={}, overrides={**overrides, **extra})


class Harness:
    """One downstream TLS connection and one pooled upstream TLS connection, serving requests on demand."""

    def __init__(self, prefix: Path, pki: Pki) -> None:
        settings = tls_listener_settings(prefix, pki)
        config: dict[str, list[dict[str, Any]]] = {
            "ca_certificates": [{"id": CA_ID, "cert": pki.pems["root"]}],
            "certificates": [{"id": CERT_ID, "cert": pki.pems["client_chain"], "key": pki.pems["client_key"]}],
            "services": [
                {
                    "id": SERVICE_ID,
                    "name": "bench",
                    "protocol": "https",
                    "host": "localhost",
                    "port": UPSTREAM_PORT,
                    "tls_verify": True,
                    "ca_certificates": [CA_ID],
                    "client_certificate": {"id": CERT_ID},
                }
            ],
            "routes": [ROUTE],
        }
        snapshot = build_snapshot(config, settings)
        self.state = ProxyState(settings, ErrorLog(None, stream=io.StringIO()), AccessLog(None), snapshot)
        client_ctx, server_ctx = _peer_contexts(pki)
        self.client = TlsPeer(client_ctx, server_side=False)
        self.server = TlsPeer(server_ctx, server_side=True)
        listener = settings.proxy_listen[0]
        assert isinstance(listener, Listener) and listener.ssl
        self.downstream = MemoryTransport({"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8443)})
        first_bytes = self.state.protocol_factory(listener)()
        self.downstream.set_protocol(first_bytes)
        first_bytes.connection_made(self.downstream)
        self.upstream: MemoryTransport | None = None

    def _connected(self, transport: MemoryTransport) -> None:
        self.upstream = transport

    def _pump(self) -> bool:
        """Move whatever is waiting, once in each direction; True if anything moved (handshakes and warm-up)."""
        client, server, moved = self.client, self.server, False
        data = client.outgoing.read()
        if data:
            moved = True
            self.downstream.get_protocol().data_received(data)  # type: ignore[attr-defined]
            self.state.tick_writes.run()
        data = self.downstream.take()
        if data:
            moved = True
            client.incoming.write(data)
            if not client.established:
                client.handshake()
        up = self.upstream
        if up is not None:
            data = up.take()
            if data:
                moved = True
                server.incoming.write(data)
                if not server.established:
                    server.handshake()
                if server.established and server.read_all():
                    server.obj.write(RESPONSE)
            data = server.outgoing.read()
            if data:
                moved = True
                up.get_protocol().data_received(data)  # type: ignore[attr-defined]
                self.state.tick_writes.run()
        return moved

    async def warm_up(self) -> None:
        """Both handshakes and the first request (the upstream connection is opened by a task; later requests find
        it in the pool)."""
        loop = asyncio.get_running_loop()
        for service in self.state.snapshot.services.values():
            real = service.connect
            assert real is not None

            async def connect(_loop: Any, *args: Any, _real: Any = real) -> Any:
                return await _real(_MemoryLoop(loop, self._connected), *args)

            service.connect = connect
        client = self.client
        client.handshake()
        deadline = loop.time() + 10
        while not client.established:
            if not self._pump() and loop.time() > deadline:
                raise RuntimeError("the downstream handshake did not complete")
            await asyncio.sleep(0)
        client.obj.write(REQUEST)
        response = b""
        while not response:
            self._pump()
            response = client.read_all()
            if loop.time() > deadline:
                raise RuntimeError("no response to the first request")
            await asyncio.sleep(0)
        self._check(response)

    def prepare(self, count: int) -> Batch:
        """The peers' side of ``count`` requests, encrypted beforehand: the client's request records and the upstream
        server's response records. Both sessions are established and send nothing unasked, so record ``i`` is what
        the peer would have written for request ``i`` (the gateway decrypts them in order)."""
        client, server = self.client, self.server
        requests, responses = [], []
        for _ in range(count):
            client.obj.write(REQUEST)
            requests.append(client.outgoing.read())
            server.obj.write(RESPONSE)
            responses.append(server.outgoing.read())
        return Batch(requests, responses)

    async def run(self, batch: Batch) -> None:
        """The gateway's part: each request record in, the upstream request out, the upstream's response in, the
        response to the client out. Only this is timed."""
        downstream, upstream = self.downstream, self.upstream
        assert upstream is not None
        tls_down, tls_up = downstream.get_protocol(), upstream.get_protocol()
        down_in, up_in = tls_down.data_received, tls_up.data_received  # type: ignore[attr-defined]
        up_out, down_out = upstream.written, downstream.written
        flush = self.state.tick_writes.run  # where the loop's tick would end: the held writes leave
        for done, (request, response) in enumerate(zip(batch.requests, batch.responses, strict=True), 1):
            down_in(request)
            flush()
            if not up_out:
                raise RuntimeError("a request did not reach the pooled upstream connection")
            up_in(response)
            flush()
            if done % LOOP_EVERY == 0:
                await asyncio.sleep(0)  # the tick-end callbacks the held writes scheduled run and are freed
        batch.upstream = up_out[:]
        up_out.clear()
        batch.downstream = down_out[:]
        down_out.clear()

    def verify(self, batch: Batch) -> None:
        """The peers decrypt what the gateway wrote: one whole request upstream and one 200 downstream per request."""
        count = len(batch.requests)
        self.server.incoming.write(b"".join(batch.upstream))
        sent = self.server.read_all()
        if sent.count(b"GET / HTTP/1.1\r\n") != count or not sent.endswith(b"\r\n\r\n"):
            raise RuntimeError(f"the upstream did not receive {count} whole requests: {sent[-200:]!r}")
        self.client.incoming.write(b"".join(batch.downstream))
        received = self.client.read_all()
        if received.count(b"HTTP/1.1 200 OK\r\n") != count or received.count(b"hello from the upstream\n") != count:
            raise RuntimeError(f"the client did not receive {count} responses: {received[-300:]!r}")

    @staticmethod
    def _check(response: bytes) -> None:
        if not response.startswith(b"HTTP/1.1 200 OK\r\n") or not response.endswith(b"hello from the upstream\n"):
            raise RuntimeError(f"unexpected response: {response!r}")

    def close(self) -> None:
        self.state.close()


@dataclass
class Batch:
    """One round: the peers' records (``prepare``) and what the gateway wrote to each side (``run``)."""

    requests: list[bytes]
    responses: list[bytes]
    upstream: list[bytes] = field(default_factory=list)
    downstream: list[bytes] = field(default_factory=list)


def engine_calls(stats: pstats.Stats, requests: int) -> str:
    """The TLS engine's share of a cProfile run: its functions and OpenSSL's (cffi) calls, per request, both
    sessions together (the downstream one receives the request and sends the response, the upstream one the
    reverse, so each line's count is two per request when each session calls it once)."""
    rows = []
    for (path, line, name), (_, calls, own, _cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        engine = "/tls/engine/" in path.replace("\\", "/")
        if (engine or "_openssl." in name) and calls * 10 >= requests:
            where = name if path == "~" else f"{name} ({Path(path).name}:{line})"
            rows.append((own, calls, where))
    rows.sort(reverse=True)
    total = sum(row[0] for row in rows) * 1e6 / requests
    calls = sum(row[1] for row in rows) / requests
    out = [f"TLS engine: {calls:.1f} calls and {total:.2f} us own time per request (under cProfile)", ""]
    out += [f"{c / requests:12.2f} {own * 1e6 / requests:11.2f}  {where}" for own, c, where in rows]
    return "\n".join(out)


async def _time(harness: Harness, requests: int, rounds: int) -> list[float]:
    figures = []
    for _ in range(rounds):
        batch = harness.prepare(requests)
        start = time.process_time()
        await harness.run(batch)
        figures.append((time.process_time() - start) / requests * 1e6)
        harness.verify(batch)
    return figures


async def _run(requests: int, rounds: int, profile: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        pki = make_pki(Path(tmp) / "pki", "ecdsa")
        harness = Harness(Path(tmp), pki)
        await harness.warm_up()
        await _time(harness, 2000, 1)  # warm: the pool, the caches, the allocator
        figures = await _time(harness, requests, rounds)
        print(
            f"{requests:,} requests x {rounds} rounds: CPU per request best {min(figures):.2f} us, "
            f"median {statistics.median(figures):.2f} us"
        )
        if profile:
            batch = harness.prepare(requests)
            profiler = cProfile.Profile()
            profiler.enable()
            await harness.run(batch)
            profiler.disable()
            harness.verify(batch)
            stats = pstats.Stats(profiler, stream=io.StringIO())
            print(per_request(stats, requests, top=60))
            print()
            print(engine_calls(stats, requests))
        harness.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--cprofile", action="store_true")
    args = parser.parse_args(argv)
    import uvloop

    uvloop.run(_run(args.requests, args.rounds, args.cprofile))


if __name__ == "__main__":
    main()
