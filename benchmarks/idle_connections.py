"""RSS per idle keepalive TLS client connection: open N TLS connections, one request each, then leave them idle.

The server's RSS (``VmRSS`` of its process tree) is read before and after; the difference divided by N is the
cost of one idle connection: kernel socket buffers are not in RSS, so this is the server's own per-connection
state (for the gateway: the ``SSL`` object and its buffers, the transports, the protocol objects). A warm-up batch
is opened and closed first so that one-time allocations (the context's first handshake, code paths, the upstream
pool) are not counted. The client is a plain asyncio program (stdlib ``ssl``: it is the load, not the proxy).

    python -m benchmarks.idle_connections [--connections 1000]   # gateway and nginx, S2 setup
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.processes import Server

__all__ = ["hold_idle_connections", "measure_idle"]

_REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"


async def _open_one(port: int, ctx: ssl.SSLContext) -> asyncio.StreamWriter:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="localhost")
    writer.write(_REQUEST)
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)
    return writer


async def hold_idle_connections(port: int, count: int, measure: Callable[[], int], batch: int = 100) -> tuple[int, int]:
    """Open ``count`` connections (``batch`` at a time), call ``measure()`` before and after; returns the two values."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    warm = await asyncio.gather(*(_open_one(port, ctx) for _ in range(50)))
    for writer in warm:
        writer.close()
    await asyncio.sleep(1.0)
    before = measure()
    writers: list[asyncio.StreamWriter] = []
    try:
        for start in range(0, count, batch):
            n = min(batch, count - start)
            writers += await asyncio.gather(*(_open_one(port, ctx) for _ in range(n)))
        await asyncio.sleep(1.0)
        after = measure()
    finally:
        for writer in writers:
            writer.close()
    return before, after


def measure_idle(server: Server, count: int) -> float:
    """KiB of server RSS per idle connection (bounded: 120 s at most)."""

    def rss() -> int:
        return server.stats().rss_kib

    before, after = asyncio.run(asyncio.wait_for(hold_idle_connections(server.port, count, rss), 120))
    return (after - before) / count


def main() -> None:
    from benchmarks.run import prepare_environment
    from benchmarks.scenarios import SCENARIOS, start_gateway, start_nginx_proxy

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=1000)
    args = parser.parse_args()
    s2 = next(s for s in SCENARIOS if s.key == "S2")
    with tempfile.TemporaryDirectory() as tmp, prepare_environment(Path(tmp)) as (env, procs):
        for name, start in (("gateway", start_gateway), ("nginx", start_nginx_proxy)):
            server = start(procs, s2, env)
            started = time.monotonic()
            kib = measure_idle(server, args.connections)
            print(f"{name:7s} {kib:6.1f} KiB RSS per idle TLS connection ({time.monotonic() - started:.1f} s)")
            procs.stop(server)


if __name__ == "__main__":
    main()
