"""Upstream failures and streaming against small Python upstreams: 504, premature close, stale keepalive, uploads."""

from __future__ import annotations

import asyncio
import tracemalloc
from pathlib import Path

import pytest

from tests.integration.proxy.harness import config, read_response, route, running_gateway, service
from tests.integration.proxy.upstreams import python_upstream, read_head

pytestmark = pytest.mark.timeout(60)

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def _get(port: int, data: bytes) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    try:
        status, headers, body, _ = await read_response(reader)
    finally:
        writer.close()
    return status, headers, body


async def test_504_read_timeout(tmp_path: Path, http_parser: str) -> None:
    accepted = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        accepted.set()
        await reader.read()  # never answers

    async with python_upstream(silent) as port:
        svc = service("127.0.0.1", port, read_timeout=200, retries=0)
        cfg = config([svc], [route(svc, paths=["/"])])
        async with running_gateway(tmp_path, cfg, http_parser=http_parser) as gw:
            status, headers, body = await _get(
                gw.port, b"GET /slow HTTP/1.1\r\nHost: t\r\nAccept: application/json\r\n\r\n"
            )
            log = gw.error_log
    assert accepted.is_set()
    assert status == 504
    rid = headers["x-kong-request-id"]
    assert body == b'{\n  "message":"The upstream server is timing out",\n  "request_id":"' + rid.encode() + b'"\n}'
    assert headers["via"] == "1.1 kong/3.9.1"
    assert int(headers["x-kong-upstream-latency"]) >= 150
    assert (
        "upstream timed out (110: Connection timed out) while reading response header from upstream, "
        f'client: 127.0.0.1, server: kong, request: "GET /slow HTTP/1.1", upstream: "http://127.0.0.1:{port}/slow", '
        f'host: "t", request_id: "{rid}"'
    ) in log


async def test_read_timeout_is_retried_for_get(tmp_path: Path) -> None:
    calls = 0

    async def first_silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal calls
        await read_head(reader)
        calls += 1
        if calls == 1:
            await reader.read()
        else:
            writer.write(OK)
            await writer.drain()

    async with python_upstream(first_silent) as port:
        svc = service("127.0.0.1", port, read_timeout=200, retries=1)
        async with running_gateway(tmp_path, config([svc], [route(svc, paths=["/"])])) as gw:
            status, _, body = await _get(gw.port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    assert (status, body, calls) == (200, b"ok", 2)


async def test_premature_close_is_502(tmp_path: Path) -> None:
    async def closer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)

    async with python_upstream(closer) as port:
        svc = service("127.0.0.1", port, retries=0)
        async with running_gateway(tmp_path, config([svc], [route(svc, paths=["/"])])) as gw:
            status, headers, _ = await _get(gw.port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            log = gw.error_log
    assert status == 502
    assert "upstream prematurely closed connection while reading response header from upstream" in log
    assert headers["server"] == "kong/3.9.1"


async def test_invalid_response_is_502_without_retry(tmp_path: Path) -> None:
    calls = 0

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal calls
        await read_head(reader)
        calls += 1
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()
        await reader.read()

    async with python_upstream(garbage) as port:
        svc = service("127.0.0.1", port, retries=3)
        async with running_gateway(tmp_path, config([svc], [route(svc, paths=["/"])])) as gw:
            status, _, _ = await _get(gw.port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    assert status == 502
    assert calls == 1


async def test_stale_keepalive_connection_is_retried_on_fresh_one(tmp_path: Path) -> None:
    """The upstream answers once per connection and drops the next request without a byte."""
    connections = 0

    async def one_shot(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await read_head(reader)
        writer.write(OK)  # says keep-alive (HTTP/1.1 default) ...
        await writer.drain()
        await read_head(reader)  # ... but drops the second request

    async with python_upstream(one_shot) as port:
        svc = service("127.0.0.1", port, retries=0)
        async with running_gateway(tmp_path, config([svc], [route(svc, paths=["/"])])) as gw:
            reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
            for _ in range(3):
                writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
                status, _, body, _ = await read_response(reader)
                assert (status, body) == (200, b"ok")
            # POST is not idempotent: the same situation is a 502
            writer.write(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nx")
            status, _, _, _ = await read_response(reader)
            assert status == 502
            writer.close()
    assert connections == 3  # 1 + one fresh connection per failed reuse; the POST is not retried


async def test_idle_connection_closed_by_upstream_is_not_reused(tmp_path: Path) -> None:
    closed = asyncio.Event()
    connections = 0

    async def answer_and_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await read_head(reader)
        writer.write(OK)
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        closed.set()

    async with python_upstream(answer_and_close) as port:
        svc = service("127.0.0.1", port, retries=0)
        async with running_gateway(tmp_path, config([svc], [route(svc, paths=["/"])])) as gw:
            assert (await _get(gw.port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"))[0] == 200
            await closed.wait()
            for _ in range(50):  # let the proxy's loop see the FIN
                if gw.state.pool.idle_count() == 0:
                    break
                await asyncio.sleep(0.01)
            assert gw.state.pool.idle_count() == 0
            closed.clear()
            assert (await _get(gw.port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"))[0] == 200
            log = gw.error_log
    assert connections == 2
    assert "[error]" not in log


async def test_10mb_upload_streams_with_bounded_memory(tmp_path: Path, http_parser: str) -> None:
    size = 10 * 1024 * 1024
    received = 0

    async def counter(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal received
        head = await read_head(reader)
        assert b"Content-Length: 10485760" in head
        while received < size:
            chunk = await reader.read(65536)
            if not chunk:
                break
            received += len(chunk)
        body = str(received).encode()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body))
        await writer.drain()

    async with python_upstream(counter) as port:
        svc = service("127.0.0.1", port)
        async with running_gateway(tmp_path, config([svc], [route(svc, paths=["/"])]), http_parser=http_parser) as gw:
            reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
            tracemalloc.start()
            try:
                writer.write(b"PUT /up HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % size)
                block = b"x" * 65536
                for _ in range(size // len(block)):
                    writer.write(block)
                    await writer.drain()
                status, _, body, _ = await read_response(reader)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            writer.close()
    assert status == 200
    assert body == str(size).encode()
    assert peak < 4 * 1024 * 1024, peak


async def test_chunked_upload_forwarded_chunked(tmp_path: Path, http_parser: str) -> None:
    seen: list[bytes] = []

    async def capture(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await read_head(reader)
        body = await reader.readuntil(b"0\r\n\r\n")
        seen.append(head + body)
        writer.write(OK)
        await writer.drain()

    async with python_upstream(capture) as port:
        svc = service("127.0.0.1", port)
        async with running_gateway(tmp_path, config([svc], [route(svc, paths=["/"])]), http_parser=http_parser) as gw:
            status, _, _ = await _get(
                gw.port,
                b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
            )
    assert status == 200
    assert b"Transfer-Encoding: chunked\r\n" in seen[0]
    assert seen[0].endswith(b"\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")


async def test_expect_100_continue(tmp_path: Path, http_parser: str) -> None:
    heads: list[bytes] = []

    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await read_head(reader)
        heads.append(head)
        await reader.readexactly(5)
        writer.write(OK)
        await writer.drain()

    async with python_upstream(upstream) as port:
        svc = service("127.0.0.1", port)
        async with running_gateway(tmp_path, config([svc], [route(svc, paths=["/"])]), http_parser=http_parser) as gw:
            reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
            writer.write(b"POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
            interim = await reader.readuntil(b"\r\n\r\n")
            assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
            writer.write(b"hello")
            status, _, body, _ = await read_response(reader)
            writer.close()
    assert (status, body) == (200, b"ok")
    assert b"expect" not in heads[0].lower()


async def test_close_delimited_upstream_body_is_rechunked(tmp_path: Path) -> None:
    async def http10(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nstreamed until close")
        await writer.drain()

    async with python_upstream(http10) as port:
        svc = service("127.0.0.1", port)
        async with running_gateway(tmp_path, config([svc], [route(svc, paths=["/"])])) as gw:
            status, headers, body = await _get(gw.port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    assert status == 200
    assert headers["transfer-encoding"] == "chunked"
    assert body == b"streamed until close"
