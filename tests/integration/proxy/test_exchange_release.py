"""A finished exchange is freed by reference counting, also when its route has plugins (``benchmarks/SOAK.md``).

A request whose route has a plugin chain gets a ``PluginContext`` that the exchange keeps; if the context pointed
back at the exchange (a closure for its error-log context did), every such request would leave a cycle to the
garbage collector, and under load the in-flight ones reach its oldest generation, which only a full pass frees:
measured as ~30 us per request with a global prometheus plugin on S3. The test proxies keepalive requests through
a route with a global ``prometheus`` instance (every flag on, so the log phase runs) with the collector off, and
counts the exchanges and plugin contexts still in memory once they are done.
"""

from __future__ import annotations

import asyncio
import gc
import io
from collections import Counter
from pathlib import Path

import pytest
import uvloop

from gateway.observability.accesslog import AccessLog
from gateway.observability.errorlog import ErrorLog
from gateway.plugins.base import LogFacts, PluginContext
from gateway.proxy.exchange import Exchange
from gateway.proxy.state import ProxyState
from gateway.runtime.snapshot import build_snapshot
from tests.integration.proxy.harness import config, route, service, settings
from tests.integration.proxy.upstreams import python_upstream, read_head

pytestmark = pytest.mark.timeout(60)

_CLASSES = (Exchange, PluginContext, LogFacts)
_REQUESTS = 20
_FLAGS = {"status_code_metrics": True, "latency_metrics": True, "bandwidth_metrics": True, "per_consumer": True}


def _in_memory() -> Counter[str]:
    return Counter(type(obj).__name__ for obj in gc.get_objects() if isinstance(obj, _CLASSES))


async def _upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            await read_head(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
    except asyncio.CancelledError:
        return


async def _left_behind(tmp_path: Path) -> Counter[str]:
    values = settings(tmp_path)
    async with python_upstream(_upstream) as upstream_port:
        svc = service(port=upstream_port)
        plugin = {"id": "8f0d7f5e-3c1a-4b0e-9a57-1f1d3f6b2c11", "name": "prometheus", "config": _FLAGS}
        snapshot = build_snapshot(config([svc], [route(svc, paths=["/r"])], plugins=[plugin]), values)
        state = ProxyState(values, ErrorLog(None, "info", stream=io.StringIO()), AccessLog(None), snapshot)
        server = await asyncio.get_running_loop().create_server(
            state.protocol_factory(values.proxy_listen[0]), "127.0.0.1", 0
        )
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:

            async def get() -> None:
                writer.write(b"GET /r HTTP/1.1\r\nHost: leak.test\r\n\r\n")
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
                assert head.startswith(b"HTTP/1.1 200 "), head
                assert await asyncio.wait_for(reader.readexactly(3), 5) == b"ok\n"

            await get()  # warm-up
            gc.collect()
            before = _in_memory()
            gc.disable()
            try:
                for _ in range(_REQUESTS):
                    await get()
                await asyncio.sleep(0)
                left = _in_memory() - before
            finally:
                gc.enable()
        finally:
            writer.close()
            server.close()
            state.begin_shutdown()
            await state.wait_idle(2)
            state.close()
            await server.wait_closed()
    return left


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_finished_exchanges_with_plugins_are_freed_without_the_collector(tmp_path: Path, loop: str) -> None:
    factory = uvloop.new_event_loop if loop == "uvloop" else asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        left = runner.run(_left_behind(tmp_path))
    # the last exchange may still be the connection's until its next request; 20 finished ones must be gone
    assert left["Exchange"] <= 1 and left["PluginContext"] <= 1 and left["LogFacts"] <= 1, dict(left)
