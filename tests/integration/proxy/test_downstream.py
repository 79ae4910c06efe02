"""Downstream HTTP/1.1 behaviour over real sockets, for both parsers: limits, smuggling shapes, keepalive,
pipelining, and the runloop's generated answers (426, redirects, 503)."""

from __future__ import annotations

import asyncio
import socket
import struct
from pathlib import Path

import pytest

from gateway.downstream.connection import FIRST_REQUEST_GRACE
from tests.integration.proxy.harness import config, raw_exchange, read_response, route, running_gateway, service
from tests.integration.proxy.upstreams import python_upstream, read_head

pytestmark = pytest.mark.timeout(60)


async def _echo_upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers every request with its request line; keeps the connection open."""
    while True:
        head = await read_head(reader)
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        if length:
            await reader.readexactly(length)
        body = head.split(b"\r\n", 1)[0]
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body))
        await writer.drain()


def _status(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1])


BIG = b"a" * 9000

BAD_REQUESTS = [
    (
        "cl_and_te",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    ("repeated_cl", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
    ("repeated_equal_cl", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400),
    ("invalid_cl", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3x\r\n\r\nabc", 400),
    ("negative_cl", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400),
    ("te_gzip", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    ("te_gzip_chunked", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
    ("obs_fold", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", 400),
    ("nul_in_value", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x00c\r\n\r\n", 400),
    ("cr_in_value", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n", 400),
    ("space_before_colon", b"GET / HTTP/1.1\r\nHost: a\r\nX-A : b\r\n\r\n", 400),
    ("garbage", b"HELLO\r\n\r\n", 400),
    ("two_hosts", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ("no_host_11", b"GET / HTTP/1.1\r\n\r\n", 400),
    ("te_in_http10", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("long_uri", b"GET /" + BIG + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414),
    ("long_header", b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + BIG + b"\r\n\r\n", 494),
    (
        "many_headers",
        b"GET / HTTP/1.1\r\nHost: a\r\n" + b"".join(b"X-H%d: %b\r\n" % (i, b"v" * 7000) for i in range(6)) + b"\r\n",
        494,
    ),
    ("bad_chunk_size", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
]


@pytest.mark.parametrize(("name", "data", "status"), BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
async def test_malformed_requests_are_rejected_and_closed(
    tmp_path: Path, http_parser: str, name: str, data: bytes, status: int
) -> None:
    async with python_upstream(_echo_upstream) as port:
        svc = service("127.0.0.1", port)
        async with running_gateway(tmp_path, config([svc], [route(svc, paths=["/"])]), http_parser=http_parser) as gw:
            raw, closed = await raw_exchange(gw.port, data)
    assert closed, raw
    sent = 400 if status == 494 else status
    assert _status(raw) == sent, raw
    assert b"Connection: close\r\n" in raw
    if status == 494:
        assert b"Request header or cookie too large" in raw
    if status == 414:
        assert b"URI too long" in raw
    if status == 501:
        assert b"<center><h1>501 Not Implemented</h1></center>" in raw
    if sent == 400 and status != 494:
        assert b"Bad request\nrequest_id: " in raw  # error_default_type = text/plain


async def test_client_max_body_size(tmp_path: Path, http_parser: str) -> None:
    async with python_upstream(_echo_upstream) as port:
        svc = service("127.0.0.1", port)
        cfg = config([svc], [route(svc, paths=["/"])])
        async with running_gateway(tmp_path, cfg, http_parser=http_parser, client_max_body_size="10") as gw:
            raw, closed = await raw_exchange(
                gw.port, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world"
            )
            assert _status(raw) == 413 and closed
            assert b"Payload too large" in raw
            raw, closed = await raw_exchange(
                gw.port,
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nb\r\nhello world\r\n0\r\n\r\n",
            )
            assert _status(raw) == 413 and closed


async def test_pipelined_requests_answered_in_order(tmp_path: Path, http_parser: str) -> None:
    async with python_upstream(_echo_upstream) as port:
        svc = service("127.0.0.1", port)
        async with running_gateway(tmp_path, config([svc], [route(svc, paths=["/"])]), http_parser=http_parser) as gw:
            reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
            batch = b"".join(
                b"POST /%d HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi" % i
                if i % 2
                else b"GET /%d HTTP/1.1\r\nHost: a\r\n\r\n" % i
                for i in range(40)
            )
            writer.write(batch)
            bodies = []
            for _ in range(40):
                status, _, body, _ = await read_response(reader)
                assert status == 200
                bodies.append(body)
            writer.close()
    assert bodies == [(b"POST /%d HTTP/1.1" if i % 2 else b"GET /%d HTTP/1.1") % i for i in range(40)]


async def test_connection_close_and_http10_rules(tmp_path: Path, http_parser: str) -> None:
    async with python_upstream(_echo_upstream) as port:
        svc = service("127.0.0.1", port)
        async with running_gateway(tmp_path, config([svc], [route(svc, paths=["/"])]), http_parser=http_parser) as gw:
            raw, closed = await raw_exchange(gw.port, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            assert closed and b"Connection: close\r\n" in raw and _status(raw) == 200
            raw, closed = await raw_exchange(gw.port, b"GET / HTTP/1.0\r\n\r\n")
            assert closed and b"Connection: close\r\n" in raw
            raw, closed = await raw_exchange(gw.port, b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", timeout=0.3)
            assert not closed and b"Connection: keep-alive\r\n" in raw


async def test_keepalive_timeout_closes_idle_connection(tmp_path: Path, http_parser: str) -> None:
    async with python_upstream(_echo_upstream) as port:
        svc = service("127.0.0.1", port)
        cfg = config([svc], [route(svc, paths=["/"])])
        async with running_gateway(tmp_path, cfg, http_parser=http_parser, keepalive_timeout="1") as gw:
            reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
            writer.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            assert (await read_response(reader))[0] == 200
            async with asyncio.timeout(3):
                assert await reader.read() == b""  # closed by the server after ~1 s
            assert gw.state.connections_active == 0
            writer.close()


async def test_body_timeout_closes_without_an_answer_as_nginx(tmp_path: Path, http_parser: str) -> None:
    """nginx terminates a request whose body stalls past ``client_body_timeout``: no response, no error line, 408 in
    the access log (checked against nginx 1.22 with a proxy_pass location)."""
    async with python_upstream(_echo_upstream) as port:
        svc = service("127.0.0.1", port)
        cfg = config([svc], [route(svc, paths=["/"])])
        async with running_gateway(tmp_path, cfg, http_parser=http_parser, client_body_timeout="1") as gw:
            reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
            writer.write(b"POST /slow HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nabc")
            async with asyncio.timeout(3):
                assert await reader.read() == b""  # closed after ~1 s, nothing written
            writer.close()
            access = gw.access_lines()
            assert gw.state.connections_active == 0
            log = gw.error_log
    assert any('"POST /slow HTTP/1.1" 408 0 ' in line for line in access), access
    assert "while reading client request body" not in log, log


async def test_https_only_route_426_and_redirect(tmp_path: Path) -> None:
    async with python_upstream(_echo_upstream) as port:
        svc = service("127.0.0.1", port)
        routes = [
            route(svc, hosts=["secure.test"], protocols=["https"]),
            route(svc, hosts=["moved.test"], protocols=["https"], https_redirect_status_code=301),
        ]
        async with running_gateway(tmp_path, config([svc], routes), trusted_ips="127.0.0.1") as gw:
            raw, _ = await raw_exchange(
                gw.port, b"GET /a?b=1 HTTP/1.1\r\nHost: secure.test\r\nConnection: close\r\n\r\n"
            )
            assert raw.startswith(b"HTTP/1.1 426 Upgrade Required\r\n")
            assert b"\r\nConnection: Upgrade\r\n" in raw and b"\r\nUpgrade: TLS/1.2, HTTP/1.1\r\n" in raw
            assert b'"message":"Please use HTTPS protocol"' in raw
            raw, _ = await raw_exchange(
                gw.port, b"GET /a?b=1 HTTP/1.1\r\nHost: moved.test:8000\r\nConnection: close\r\n\r\n"
            )
            assert raw.startswith(b"HTTP/1.1 301 Moved Permanently\r\n")
            assert b"\r\nLocation: https://moved.test/a?b=1\r\n" in raw
            assert b"\r\nContent-Length: 0\r\n" in raw
            # X-Forwarded-Proto from a trusted peer is honoured; a bogus value is not https
            raw, _ = await raw_exchange(
                gw.port,
                b"GET /x HTTP/1.1\r\nHost: secure.test\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n",
            )
            assert _status(raw) == 200
            assert raw.endswith(b"GET /x HTTP/1.1")
            raw, _ = await raw_exchange(
                gw.port,
                b"GET /x HTTP/1.1\r\nHost: secure.test\r\nX-Forwarded-Proto: httpsa\r\nConnection: close\r\n\r\n",
            )
            assert _status(raw) == 426
        async with running_gateway(tmp_path / "untrusted", config([svc], routes)) as gw:
            raw, _ = await raw_exchange(
                gw.port,
                b"GET /x HTTP/1.1\r\nHost: secure.test\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n",
            )
            assert _status(raw) == 426


async def test_serviceless_route_503_and_disabled_service_404(tmp_path: Path) -> None:
    disabled = service("127.0.0.1", 1, enabled=False)
    routes = [route(None, paths=["/none"]), route(disabled, paths=["/off"])]
    async with running_gateway(tmp_path, config([disabled], routes)) as gw:
        raw, _ = await raw_exchange(gw.port, b"GET /none HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        assert _status(raw) == 503 and b'"message":"no Service found with those values"' in raw
        raw, _ = await raw_exchange(gw.port, b"GET /off HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        assert _status(raw) == 404


async def test_snapshot_swap_keeps_connections(tmp_path: Path, http_parser: str) -> None:
    async with python_upstream(_echo_upstream) as port:
        svc = service("127.0.0.1", port)
        async with running_gateway(tmp_path, config([svc], [route(svc, paths=["/a"])]), http_parser=http_parser) as gw:
            reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
            writer.write(b"GET /b HTTP/1.1\r\nHost: a\r\n\r\n")
            assert (await read_response(reader))[0] == 404
            gw.reconfigure(config([svc], [route(svc, paths=["/b"])]))
            writer.write(b"GET /b HTTP/1.1\r\nHost: a\r\n\r\n")
            assert (await read_response(reader))[0] == 200
            writer.close()


async def test_shutdown_closes_idle_and_finishes_busy(tmp_path: Path) -> None:
    release = asyncio.Event()

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        await release.wait()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()

    async with python_upstream(slow) as port:
        svc = service("127.0.0.1", port)
        async with running_gateway(tmp_path, config([svc], [route(svc, paths=["/"])])) as gw:
            idle_r, idle_w = await asyncio.open_connection("127.0.0.1", gw.port)
            busy_r, busy_w = await asyncio.open_connection("127.0.0.1", gw.port)
            busy_w.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            while gw.state.connections_writing == 0:
                await asyncio.sleep(0.01)
            assert gw.state.connections_active == 2
            gw.state.begin_shutdown()
            async with asyncio.timeout(2):
                assert await idle_r.read() == b""
            release.set()
            status, headers, body, _ = await read_response(busy_r)
            assert (status, body, headers["connection"]) == (200, b"ok", "close")
            assert await gw.state.wait_idle(2)
            idle_w.close()
            busy_w.close()


async def test_shutdown_gives_a_connection_without_request_a_short_grace(tmp_path: Path) -> None:
    """A keepalive connection between requests is closed at once; one that has not sent its first request yet (the
    client connected just before the stop, its request may be on the wire) is served if the request comes within
    ``FIRST_REQUEST_GRACE``, with ``Connection: close``, and closed after it otherwise."""
    async with python_upstream(_echo_upstream) as port:
        svc = service("127.0.0.1", port)
        async with running_gateway(tmp_path, config([svc], [route(svc, paths=["/"])])) as gw:
            used_r, used_w = await asyncio.open_connection("127.0.0.1", gw.port)
            used_w.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            assert (await read_response(used_r))[0] == 200
            late_r, late_w = await asyncio.open_connection("127.0.0.1", gw.port)
            silent_r, silent_w = await asyncio.open_connection("127.0.0.1", gw.port)
            while gw.state.connections_active < 3:
                await asyncio.sleep(0.01)
            loop = asyncio.get_running_loop()
            stopped = loop.time()
            gw.state.begin_shutdown()
            async with asyncio.timeout(FIRST_REQUEST_GRACE / 2):
                assert await used_r.read() == b""  # at once
            late_w.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            status, headers, _, _ = await read_response(late_r)
            assert (status, headers["connection"]) == (200, "close")
            async with asyncio.timeout(FIRST_REQUEST_GRACE + 2):
                assert await silent_r.read() == b""
            assert loop.time() - stopped >= FIRST_REQUEST_GRACE * 0.9
            assert await gw.state.wait_idle(2)
            for writer in (used_w, late_w, silent_w):
                writer.close()


async def test_status_counters(tmp_path: Path) -> None:
    async with python_upstream(_echo_upstream) as port:
        svc = service("127.0.0.1", port)
        async with running_gateway(tmp_path, config([svc], [route(svc, paths=["/"])])) as gw:
            reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
            for _ in range(3):
                writer.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
                await read_response(reader)
            state = gw.state
            assert state.total_requests == 3
            assert state.connections_accepted == state.connections_handled == 1
            assert state.connections_active == 1
            assert (state.connections_reading, state.connections_writing, state.connections_waiting) == (0, 0, 1)
            writer.close()


async def test_a_client_gone_before_the_response_is_logged_499(tmp_path: Path, http_parser: str) -> None:
    """nginx logs 499 ("client closed request") for a request whose client went away (here: reset) before the
    response started; the upstream side is dropped. (A FIN alone is a half-close: the response is still sent.)"""
    asked = asyncio.Event()
    release = asyncio.Event()

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        asked.set()
        await release.wait()
        writer.close()

    async with python_upstream(slow) as port:
        svc = service("127.0.0.1", port)
        cfg = config([svc], [route(svc, paths=["/"])])
        async with running_gateway(tmp_path, cfg, http_parser=http_parser) as gw:
            _reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
            writer.write(b"GET /gone HTTP/1.1\r\nHost: a\r\n\r\n")
            async with asyncio.timeout(3):
                await asked.wait()
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()  # an RST, as a client that gives up
            async with asyncio.timeout(3):
                while gw.state.connections_active:
                    await asyncio.sleep(0.01)
            access = gw.access_lines()
            release.set()
    assert any('"GET /gone HTTP/1.1" 499 ' in line for line in access), access
