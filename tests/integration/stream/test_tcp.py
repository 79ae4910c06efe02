"""``tcp`` routes on a plain stream listener: routing by destination port, bytes both ways with backpressure and
half-close, the service's timeouts and tries, and nginx's stream log lines."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import uuid
from pathlib import Path

import pytest

from tests.fixtures.ports import closed_port
from tests.integration.proxy.harness import route, service
from tests.integration.stream.harness import echo_server, line_server, running_stream

pytestmark = pytest.mark.timeout(60)


def line(level: str) -> str:
    """The start of an nginx error line at ``level`` about a connection."""
    return r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[" + level + r"\] \d+#0: \*\d+ "


def tcp_route(svc: dict[str, object], port: int, **fields: object) -> dict[str, object]:
    return route(svc, protocols=["tcp"], destinations=[{"port": port}], **fields)


async def exchange(port: int, data: bytes) -> bytes:
    """Send ``data``, read to the end; a connection the gateway closed with our bytes unread ends in a reset (as
    Kong's does), which reads as nothing."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    try:
        answer = await asyncio.wait_for(reader.read(), 10)
    except ConnectionResetError:
        answer = b""
    writer.close()
    return answer


async def test_a_tcp_route_by_destination_port(tmp_path: Path) -> None:
    """Two listeners, two routes that differ only in their destination port: each port reaches its upstream."""
    async with line_server("a") as a, line_server("b") as b:
        svc_a, svc_b = service("127.0.0.1", a.port, protocol="tcp"), service("127.0.0.1", b.port, protocol="tcp")
        async with running_stream(tmp_path, {}, plain=2) as gw:
            first, second = gw.plains
            gw.reconfigure({"services": [svc_a, svc_b], "routes": [tcp_route(svc_a, first), tcp_route(svc_b, second)]})
            assert await exchange(first, b"hello\n") == b"a: hello\n"
            assert await exchange(second, b"again\n") == b"b: again\n"
            # the upstream ended first (its FIN was passed on), the client then closed: the session ends there
            lines = await gw.wait_for_log(r"client disconnected, bytes from/to client:6/9", 2)
    assert all(
        re.match(line("info") + "client disconnected, bytes from/to client:6/9, bytes from/to upstream:9/6$", text)
        for text in lines
    )
    assert a.seen == [b"hello\n"] and b.seen == [b"again\n"]


async def test_no_route_closes_with_kongs_error_line(tmp_path: Path) -> None:
    async with running_stream(tmp_path, {"services": [], "routes": []}) as gw:
        assert await exchange(gw.plain, b"x") == b""
        lines = await gw.wait_for_log("no Route found")
    assert re.match(
        line("error") + rf"no Route found with those values while prereading client data, client: 127\.0\.0\.1, "
        rf"server: 127\.0\.0\.1:{gw.plain}$",
        lines[0],
    )


async def test_bulk_both_ways_with_half_close(tmp_path: Path) -> None:
    """16 MiB up while reading the echo back, then a FIN: the echo's remaining bytes still arrive (half-close), and
    the session ends only when the upstream closes too."""
    payload = os.urandom(16 << 20)
    async with echo_server() as echo:
        svc = service("127.0.0.1", echo.port, protocol="tcp")
        async with running_stream(tmp_path, lambda p, s: {"services": [svc], "routes": [tcp_route(svc, p)]}) as gw:
            reader, writer = await asyncio.open_connection("127.0.0.1", gw.plain)

            async def send() -> None:
                for i in range(0, len(payload), 1 << 20):
                    writer.write(payload[i : i + (1 << 20)])
                    await writer.drain()
                writer.write_eof()

            sender = asyncio.create_task(send())
            received = await asyncio.wait_for(reader.read(-1), 30)  # to EOF: the echo closed after our FIN
            await sender
            writer.close()
            lines = await gw.wait_for_log("disconnected, bytes from/to client")
    assert hashlib.sha256(received).digest() == hashlib.sha256(payload).digest()
    size = len(payload)
    assert lines[0].endswith(f"bytes from/to client:{size}/{size}, bytes from/to upstream:{size}/{size}")


async def test_a_slow_reader_holds_the_upstream_back(tmp_path: Path) -> None:
    """Backpressure: while the client reads nothing, the gateway stops reading the upstream, so what it buffers stays
    near the transports' high-water marks instead of the whole stream."""
    sent = 0
    blocked = asyncio.Event()

    async def firehose(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal sent
        chunk = b"x" * 65536
        while sent < (64 << 20):
            writer.write(chunk)
            try:
                await asyncio.wait_for(writer.drain(), 0.5)
            except TimeoutError:
                blocked.set()  # the gateway stopped reading us
                await writer.drain()
            sent += len(chunk)

    server = await asyncio.start_server(firehose, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    svc = service("127.0.0.1", port, protocol="tcp")
    try:
        async with running_stream(tmp_path, lambda p, s: {"services": [svc], "routes": [tcp_route(svc, p)]}) as gw:
            reader, writer = await asyncio.open_connection("127.0.0.1", gw.plain, limit=1 << 16)
            await asyncio.wait_for(blocked.wait(), 20)
            assert sent < (16 << 20)  # socket buffers and the gateway's transports only: far from 64 MiB
            first = await reader.readexactly(1 << 20)
            assert first == b"x" * (1 << 20)
            writer.close()
    finally:
        server.close()


async def test_connect_failures_are_tried_again_and_logged_as_nginx(tmp_path: Path) -> None:
    port = closed_port()
    svc = service("127.0.0.1", port, protocol="tcp", retries=2)
    async with running_stream(tmp_path, lambda p, s: {"services": [svc], "routes": [tcp_route(svc, p)]}) as gw:
        assert await exchange(gw.plain, b"x") == b""
        lines = await gw.wait_for_log("connect\\(\\) failed", 3)
    expected = (
        line("error")
        + r"connect\(\) failed \(111: Connection refused\) while connecting to upstream, client: 127\.0\.0\.1, "
        + rf'server: 127\.0\.0\.1:{gw.plain}, upstream: "127\.0\.0\.1:{port}", '
        + r"bytes from/to client:\d/0, bytes from/to upstream:0/0$"
    )
    assert len(lines) == 3 and all(re.match(expected, line) for line in lines), lines


async def test_the_idle_timeout_is_the_services_read_and_write_timeout(tmp_path: Path) -> None:
    async with echo_server() as echo:
        svc = service("127.0.0.1", echo.port, protocol="tcp", read_timeout=300, write_timeout=200)
        async with running_stream(tmp_path, lambda p, s: {"services": [svc], "routes": [tcp_route(svc, p)]}) as gw:
            reader, writer = await asyncio.open_connection("127.0.0.1", gw.plain)
            writer.write(b"ping")
            assert await asyncio.wait_for(reader.readexactly(4), 5) == b"ping"
            started = asyncio.get_running_loop().time()
            assert await asyncio.wait_for(reader.read(), 5) == b""  # idle: closed by the gateway
            waited = asyncio.get_running_loop().time() - started
            writer.close()
            lines = await gw.wait_for_log("connection timed out")
    assert 0.25 < waited < 3.0
    assert re.match(
        line("info")
        + r"connection timed out \(110: Connection timed out\) while proxying connection, client: 127\.0\.0\.1, "
        + rf'server: 127\.0\.0\.1:{gw.plain}, upstream: "127\.0\.0\.1:{echo.port}", '
        + r"bytes from/to client:4/4, bytes from/to upstream:4/4$",
        lines[0],
    )


async def test_a_route_whose_service_is_http_is_kept_without_it(tmp_path: Path) -> None:
    svc = service("127.0.0.1", 80, protocol="http")
    async with running_stream(tmp_path, lambda p, s: {"services": [svc], "routes": [tcp_route(svc, p)]}) as gw:
        assert await exchange(gw.plain, b"x") == b""
        assert "service with protocol 'http' cannot be used with 'stream' subsystem" in gw.error_log
        await gw.wait_for_log(r"\[error\] .*no Service found with those values while prereading client data")


async def test_tries_move_to_another_target_of_the_upstream(tmp_path: Path) -> None:
    """A balanced service: a try on the dead target is logged, reported to the passive checker, and the next try goes
    to the live one, so every connection is served (retries=1)."""
    dead = closed_port()
    async with line_server("live") as live:
        upstream_id = str(uuid.uuid4())
        checks = {"passive": {"unhealthy": {"tcp_failures": 100}}}
        svc = service("pool.test", 1, protocol="tcp", retries=1)
        cfg = lambda p, s: {  # noqa: E731
            "services": [svc],
            "routes": [tcp_route(svc, p)],
            "upstreams": [{"id": upstream_id, "name": "pool.test", "healthchecks": checks}],
            "targets": [
                {"id": str(uuid.uuid4()), "target": f"127.0.0.1:{dead}", "upstream": {"id": upstream_id}},
                {"id": str(uuid.uuid4()), "target": f"127.0.0.1:{live.port}", "upstream": {"id": upstream_id}},
            ],
        }
        async with running_stream(tmp_path, cfg) as gw:
            answers = [await exchange(gw.plain, f"{i}\n".encode()) for i in range(4)]
            refused = await gw.wait_for_log(rf'connect\(\) failed .*upstream: "127\.0\.0\.1:{dead}"')
    assert answers == [f"live: {i}\n".encode() for i in range(4)]
    assert 1 <= len(refused) <= 4  # the tries that met the dead target, each followed by one on the live one
