"""The per-request Python of the proxy path, measured in-process: no sockets, no load generator, no upstream process.

    python -m benchmarks.inprocess [--requests 20000] [--rounds 7] [--cprofile]

Drives the real stack (``HttpToolsProtocol`` -> ``Exchange`` -> pool -> ``UpstreamConnection``) over in-memory
transports with S1's traffic: wrk's keepalive ``GET /`` (Host only) on a plain listener, nginx's 24-byte answer,
a plain ``http`` service on an IP, access log off. Every request is served synchronously (the upstream's answer is
fed in as soon as the request head was written), so the figure is the Python the proxy spends per request with
the syscalls, the event loop and the other processes taken away: the part of ``benchmarks.compare``'s CPU
per request that a change to the request path can move. It repeats within a few percent where a compare run
moves by 10%, so it is what to steer by; the compare run is what to report.

The loop runs every ``LOOP_EVERY`` requests (timed, as under load): each tick's held writes schedule one
``call_soon`` (``flow.TickWrites``), which the harness's own flush makes an empty run; without the turn, uvloop kept
those callbacks queued, 40,000 objects per 20,000 requests, and the collector's passes over them went into the
figure (S1 5.86 against 5.41 us median in one pair of runs, up to 7.4 against 6.4 when a full pass fell in a round;
TUNING.md, "The in-process harnesses and the loop's queue").

Prints process CPU microseconds per request (best and median of the rounds), and with ``--cprofile`` the
functions by own time (``benchmarks.profile.per_request``).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import statistics
import tempfile
import time
from typing import Any, Final

from benchmarks.profile import per_request
from gateway.downstream.http1 import HttpToolsProtocol
from gateway.observability.accesslog import AccessLog
from gateway.observability.errorlog import ErrorLog
from gateway.proxy.state import ProxyState
from gateway.runtime.snapshot import build_snapshot
from gateway.settings import Listener, load_settings
from gateway.upstream.connection import UpstreamConnection
from gateway.upstream.service import ServiceTarget

__all__ = ["LOOP_EVERY", "Harness", "MemoryTransport", "main"]

#: requests (connections, for the handshake harness) between two turns of the loop (see the module docstring)
LOOP_EVERY: Final = 64

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\r\n"
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sun, 22 Nov 2026 10:00:00 GMT\r\n"
    b"Content-Type: application/octet-stream\r\nContent-Length: 24\r\nConnection: keep-alive\r\n\r\n"
    b"hello from the upstream\n"
)
SERVICE = {
    "id": "11111111-1111-1111-1111-111111111111",
    "name": "svc",
    "protocol": "http",
    "host": "127.0.0.1",
    "port": 9000,
}
ROUTE = {"id": "22222222-2222-2222-2222-222222222222", "paths": ["/"], "service": {"id": SERVICE["id"]}}


class MemoryTransport(asyncio.Transport):
    """A transport that keeps what is written; ``on_write`` sees each write."""

    def __init__(self, extra: dict[str, Any], on_write: Any = None) -> None:
        super().__init__()
        self.extra = extra
        self.on_write = on_write
        self.written: list[bytes] = []
        self.closing = False

    def write(self, data: Any) -> None:
        self.written.append(data)
        if self.on_write is not None:
            self.on_write(data)

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.extra.get(name, default)


class Harness:
    """One downstream connection and one pooled upstream connection, serving requests on demand."""

    def __init__(self, prefix: str) -> None:
        settings = load_settings(
            env={},
            overrides={
                "prefix": prefix,
                "proxy_listen": "127.0.0.1:8000",
                "admin_listen": "off",
                "proxy_access_log": "off",
                "upstream_keepalive_max_requests": "1000000000",
            },
        )
        snapshot = build_snapshot({"services": [SERVICE], "routes": [ROUTE]}, settings)
        self.upstream_requests = 0
        self.upstream: UpstreamConnection | None = None

        async def connect(
            loop: asyncio.AbstractEventLoop, up: UpstreamConnection, ip: str, port: int, svc: ServiceTarget, host: str
        ) -> tuple[asyncio.BaseTransport, asyncio.BaseProtocol]:
            self.upstream = up
            transport = MemoryTransport({}, self._count)
            up.connection_made(transport)
            return transport, up

        for service in snapshot.services.values():
            service.connect = connect
        self.state = ProxyState(settings, ErrorLog(None, stream=io.StringIO()), AccessLog(None), snapshot)
        self.conn = HttpToolsProtocol(self.state, Listener("127.0.0.1", 8000))
        self.downstream = MemoryTransport({"peername": ("127.0.0.1", 40000)})
        self.conn.connection_made(self.downstream)

    def _count(self, data: bytes) -> None:
        self.upstream_requests += 1

    async def warm_up(self) -> None:
        """The first request opens the upstream connection (a task); later ones find it in the pool."""
        self.conn.data_received(REQUEST)
        while self.upstream_requests == 0:
            await asyncio.sleep(0)
        assert self.upstream is not None
        self.upstream.data_received(RESPONSE)
        self.state.tick_writes.run()
        self._check()

    async def serve(self, count: int) -> None:
        """``count`` keepalive requests, each answered as soon as it reached the upstream; the loop turns every
        ``LOOP_EVERY``."""
        conn, up = self.conn, self.upstream
        assert up is not None
        before = self.upstream_requests
        flush = self.state.tick_writes.run  # where the loop's tick would end: the held writes leave
        for done in range(1, count + 1):  # ``request``'s steps, inline: a call per request would be in the figure
            conn.data_received(REQUEST)
            flush()
            up.data_received(RESPONSE)
            flush()
            if done % LOOP_EVERY == 0:
                await asyncio.sleep(0)  # the tick-end callbacks the held writes scheduled run and are freed
        if self.upstream_requests - before != count:
            raise RuntimeError("a request did not reach the pooled upstream connection")
        self._check()

    def request(self) -> None:
        """One keepalive request and its answer, synchronously (after ``warm_up``); the caller turns the loop
        every ``LOOP_EVERY`` calls and checks with ``serve``'s counts or ``_check``."""
        up = self.upstream
        assert up is not None
        flush = self.state.tick_writes.run  # where the loop's tick would end: the held writes leave
        self.conn.data_received(REQUEST)
        flush()
        up.data_received(RESPONSE)
        flush()

    def _check(self) -> None:
        written = self.downstream.written
        if not written or not bytes(written[-1]).startswith(b"HTTP/1.1 200 OK\r\n"):
            raise RuntimeError(f"unexpected response: {bytes(written[-1]) if written else b''!r}")
        written.clear()


async def _run(requests: int, rounds: int, profile: bool) -> None:
    with tempfile.TemporaryDirectory() as prefix:
        harness = Harness(prefix)
        await harness.warm_up()
        await harness.serve(2000)
        figures = []
        for _ in range(rounds):
            start = time.process_time()
            await harness.serve(requests)
            figures.append((time.process_time() - start) / requests * 1e6)
        print(
            f"{requests:,} requests x {rounds} rounds: CPU per request best {min(figures):.2f} us, "
            f"median {statistics.median(figures):.2f} us"
        )
        if profile:
            profiler = cProfile.Profile()
            profiler.enable()
            await harness.serve(requests)
            profiler.disable()
            out = io.StringIO()
            print(per_request(pstats.Stats(profiler, stream=out), requests))
        harness.state.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--cprofile", action="store_true")
    args = parser.parse_args(argv)
    import uvloop

    uvloop.run(_run(args.requests, args.rounds, args.cprofile))


if __name__ == "__main__":
    main()
