"""A closed downstream TLS connection is freed by reference counting, without the garbage collector (issue 11).

Why it matters (``benchmarks/SOAK.md``): a keepalive connection lives long enough for its objects to reach the
collector's oldest generation, which is collected only when it has grown by a quarter. If the objects of a closed
connection form reference cycles, they - with the connection's OpenSSL ``SSL`` object, ~20 KiB of ``malloc`` - wait
for that pass: the soak saw workers' ``malloc`` in use climb by ~8 MiB over 500 closed keepalive connections, and
``malloc`` keeps the high-water mark. The allowance grows with the number of long-lived objects (a larger
configuration), so the cycles are broken when the socket goes: ``TlsProtocol.connection_lost`` releases the session
(``TlsSession.release``: OpenSSL's app data pointed back at it) and forgets its ``TlsTransport``, and
``HttpToolsProtocol`` drops its parser (whose callbacks are bound methods of the connection).

The test runs the ``ssl`` listener in-process, on asyncio's loop and on uvloop (the gateway's), with both parsers,
proxying to a plain keepalive upstream; it disables the collector, opens and closes connections, and counts the
instances of the connection's classes that are still in memory (``gc.get_objects`` lists unreachable objects too,
until a collection frees them).
"""

from __future__ import annotations

import asyncio
import gc
import io
import ssl
from collections import Counter
from pathlib import Path

import pytest
import uvloop
from OpenSSL import SSL

from gateway.downstream.connection import HttpConnection
from gateway.downstream.flow import FlowControl
from gateway.observability.accesslog import AccessLog
from gateway.observability.errorlog import ErrorLog
from gateway.proxy.state import ProxyState
from gateway.runtime.snapshot import build_snapshot
from gateway.settings import load_settings
from gateway.tls.engine.app_transport import TlsTransport
from gateway.tls.engine.info import TlsInfo
from gateway.tls.engine.session import TlsSession
from gateway.tls.engine.transport import TlsProtocol
from tests.integration.proxy.harness import config, route, service
from tests.integration.proxy.upstreams import python_upstream, read_head

pytestmark = pytest.mark.timeout(60)

_CLASSES = (HttpConnection, FlowControl, TlsProtocol, TlsTransport, TlsSession, TlsInfo, SSL.Connection)
_CONNECTIONS = 4
_REQUESTS = 3


def _in_memory() -> Counter[str]:
    """Instances of the connection's classes in memory, reachable or not (the collector is off)."""
    return Counter(type(obj).__name__ for obj in gc.get_objects() if isinstance(obj, _CLASSES))


async def _upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            await read_head(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
    except asyncio.CancelledError:  # the test is over and the pooled connection still open: end quietly
        return


async def _keepalive_connection(port: int, ctx: ssl.SSLContext) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="soak.test")
    for _ in range(_REQUESTS):
        writer.write(b"GET /r HTTP/1.1\r\nHost: soak.test\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200 "), head
        assert await asyncio.wait_for(reader.readexactly(3), 5) == b"ok\n"
    writer.close()
    await writer.wait_closed()


async def _left_behind(tmp_path: Path, parser: str) -> tuple[Counter[str], Counter[str]]:
    """(instances while the connections are open, instances left once they are all closed)."""
    settings = load_settings(
        env={},
        overrides={
            "prefix": str(tmp_path),
            "proxy_listen": "127.0.0.1:0 ssl",
            "admin_listen": "off",
            "http_parser": parser,
        },
    )
    async with python_upstream(_upstream) as upstream_port:
        svc = service(port=upstream_port)
        snapshot = build_snapshot(config([svc], [route(svc, paths=["/r"])]), settings)
        state = ProxyState(settings, ErrorLog(None, "info", stream=io.StringIO()), AccessLog(None), snapshot)
        server = await asyncio.get_running_loop().create_server(
            state.protocol_factory(settings.proxy_listen[0]), "127.0.0.1", 0
        )
        port = server.sockets[0].getsockname()[1]
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        try:
            await _keepalive_connection(port, ctx)  # warm-up: the upstream pool, first-use caches
            assert await state.wait_idle(5)
            gc.collect()
            before = _in_memory()
            gc.disable()
            try:
                clients = [asyncio.open_connection("127.0.0.1", port, ssl=ctx) for _ in range(_CONNECTIONS)]
                opened = await asyncio.gather(*clients)
                during = _in_memory() - before
                for _, writer in opened:
                    writer.close()
                    await writer.wait_closed()
                for _ in range(_CONNECTIONS):
                    await _keepalive_connection(port, ctx)
                assert await state.wait_idle(5)
                await asyncio.sleep(0)  # the transports' own close callbacks (uvloop closes handles a pass later)
                left = _in_memory() - before
            finally:
                gc.enable()
        finally:
            server.close()
            state.begin_shutdown()
            await state.wait_idle(2)
            state.close()
            await server.wait_closed()
    return during, left


@pytest.mark.parametrize("parser", ["httptools", "h11"])
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_closed_tls_connections_are_freed_without_the_collector(tmp_path: Path, loop: str, parser: str) -> None:
    factory = uvloop.new_event_loop if loop == "uvloop" else asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        during, left = runner.run(_left_behind(tmp_path, parser))
    # the count is meaningful: while open, each connection has its TLS stack and HTTP connection in memory
    assert during["TlsSession"] >= _CONNECTIONS and during["Connection"] >= _CONNECTIONS, during
    assert not left, f"still in memory after every connection closed, awaiting the collector: {dict(left)}"
