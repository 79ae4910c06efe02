"""The pooled connection's timers outlive a request (one handle per connection, moved by a deadline): they must
still fire for the request that needs them, and never for one that does not."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.integration.proxy.harness import config, read_response, route, running_gateway, service
from tests.integration.proxy.upstreams import python_upstream, read_head

pytestmark = pytest.mark.timeout(60)

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def test_read_timeout_fires_on_a_reused_connection(tmp_path: Path) -> None:
    """First request answered, second one (same pooled connection) never: 504 after the read timeout."""
    connections = 0

    async def answer_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await read_head(reader)
        writer.write(OK)
        await writer.drain()
        await read_head(reader)
        await reader.read()  # the second request is never answered

    async with python_upstream(answer_once) as port:
        svc = service("127.0.0.1", port, read_timeout=300, retries=0)
        async with running_gateway(tmp_path, config([svc], [route(svc, paths=["/"])])) as gw:
            reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
            writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            assert (await read_response(reader))[0] == 200
            await asyncio.sleep(0.4)  # longer than the read timeout: a stale timer must not hit the next request
            writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            loop = asyncio.get_running_loop()
            started = loop.time()
            status = (await read_response(reader))[0]
            elapsed = loop.time() - started
            writer.close()
    assert connections == 1
    assert status == 504
    assert 0.25 <= elapsed < 2.0


async def test_slow_answers_within_the_read_timeout_succeed_on_a_reused_connection(tmp_path: Path) -> None:
    """Each answer comes after 60% of the read timeout: the deadline moves per request, no spurious 504."""

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_head(reader)
            await asyncio.sleep(0.18)
            writer.write(OK)
            await writer.drain()

    async with python_upstream(slow) as port:
        svc = service("127.0.0.1", port, read_timeout=300, retries=0)
        async with running_gateway(tmp_path, config([svc], [route(svc, paths=["/"])])) as gw:
            reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
            for _ in range(4):
                writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
                assert (await read_response(reader))[0] == 200
            writer.close()


async def test_idle_timeout_closes_a_connection_that_was_reused(tmp_path: Path) -> None:
    """``upstream_keepalive_idle_timeout``: counted from the last release, also after several reuses."""
    closed = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                await read_head(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                closed.set()
                return
            writer.write(OK)
            await writer.drain()

    async with python_upstream(serve) as port:
        svc = service("127.0.0.1", port, retries=0)
        cfg = config([svc], [route(svc, paths=["/"])])
        async with running_gateway(tmp_path, cfg, upstream_keepalive_idle_timeout="1") as gw:
            reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
            for _ in range(3):
                writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
                assert (await read_response(reader))[0] == 200
                await asyncio.sleep(0.6)  # below the idle timeout each time: the connection is reused
            assert gw.state.pool.hits == 2
            assert not closed.is_set()
            await asyncio.wait_for(closed.wait(), 5)  # then it expires about 1 s after the last release
            assert gw.state.pool.idle_count() == 0
            writer.close()
