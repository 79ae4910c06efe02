"""The proxied request and response heads byte for byte, through the real parser -> Exchange -> pool -> upstream
connection stack over in-memory transports (no sockets, no TLS).

The expected bytes were taken from the tree before the heads were assembled from compiled templates
(``HeaderPolicy.response_tails``, the one-f-string upstream head): these tests pin that order and spelling.
"""

from __future__ import annotations

import asyncio
import io
import re
from pathlib import Path

import pytest

from benchmarks.inprocess import MemoryTransport
from gateway.downstream.connection import HttpConnection
from gateway.downstream.http1 import PROTOCOLS
from gateway.observability.accesslog import AccessLog
from gateway.observability.errorlog import ErrorLog
from gateway.proxy.state import ProxyState
from gateway.runtime.snapshot import build_snapshot
from gateway.settings import Listener, load_settings
from gateway.upstream.connection import UpstreamConnection
from gateway.upstream.service import ServiceTarget

NGINX = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sun, 22 Nov 2026 10:00:00 GMT\r\n"
    b"Content-Type: application/octet-stream\r\nContent-Length: 24\r\nConnection: keep-alive\r\n\r\n"
    b"hello from the upstream\n"
)
MIXED = (
    b"HTTP/1.1 201 Created Thing\r\nVia: 1.0 a\r\nX-A: 1\r\nConnection: keep-alive, X-Gone, Date\r\nX-Gone: 2\r\n"
    b"Date: x\r\nVia: 1.1 b\r\nTrailer: X-T\r\nKeep-Alive: timeout=5\r\nTransfer-Encoding: chunked\r\n"
    b"Content-Type: text/plain\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
)
NO_CONTENT = b"HTTP/1.1 204 No Content\r\nServer: s\r\nContent-Length: 0\r\nConnection: Keep-Alive\r\n\r\n"

PLAIN_GET = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8443\r\n\r\n"
RICH_GET = (
    b"GET /a/b?x=1 HTTP/1.1\r\nHost: Example.COM:8443\r\nUser-Agent: t\r\nTE: trailers, deflate\r\nVia: 1.0 p\r\n"
    b"X-Forwarded-For: 9.9.9.9\r\nConnection: keep-alive, X-Drop\r\nX-Drop: 1\r\nAccept: */*\r\nX-Other: o\r\n\r\n"
)
HEAD_10 = b"HEAD / HTTP/1.0\r\nConnection: keep-alive\r\nReferer: r\r\n\r\n"

SERVICE = {
    "id": "11111111-1111-1111-1111-111111111111",
    "name": "svc",
    "protocol": "http",
    "host": "localhost",
    "port": 9443,
    "path": "/",
    "retries": 5,
    "connect_timeout": 60000,
    "write_timeout": 60000,
    "read_timeout": 60000,
    "enabled": True,
}
ROUTE = {
    "id": "22222222-2222-2222-2222-222222222222",
    "protocols": ["http", "https"],
    "paths": ["/"],
    "strip_path": True,
    "preserve_host": False,
    "path_handling": "v0",
    "https_redirect_status_code": 426,
    "service": {"id": SERVICE["id"]},
}


class _Tls:
    sni = None


async def _proxy(tmp_path: Path, request: bytes, response: bytes, parser: str, **overrides: str) -> tuple[str, str]:
    """One request through the stack: (downstream response, upstream request), request ids and Date masked.

    The request is sent twice on one connection: the second takes the route's lane (``proxy.lane``), built by the
    first, and must produce the same bytes.
    """
    first, second = await _proxy_all(tmp_path, [request, request], response, parser, **overrides)
    assert second == first
    return first


async def _proxy_all(
    tmp_path: Path, requests: list[bytes], response: bytes, parser: str, **overrides: str
) -> list[tuple[str, str]]:
    """Requests one after the other on one connection: (downstream response, upstream request) of each, masked;
    every request after the first must have been served on its route's lane."""
    settings = load_settings(
        env={},
        overrides={
            "prefix": str(tmp_path),
            "proxy_listen": "127.0.0.1:8443",
            "admin_listen": "off",
            "http_parser": parser,
            **overrides,
        },
    )
    snapshot = build_snapshot({"services": [SERVICE], "routes": [ROUTE]}, settings)
    loop = asyncio.get_running_loop()
    upstream_sent: list[bytes] = []

    async def connect(
        loop_: asyncio.AbstractEventLoop, up: UpstreamConnection, ip: str, port: int, svc: ServiceTarget, host: str
    ) -> tuple[asyncio.BaseTransport, asyncio.BaseProtocol]:
        def answer(data: bytes) -> None:
            upstream_sent.append(data)
            loop.call_soon(up.data_received, response)

        transport = MemoryTransport({}, answer)
        up.connection_made(transport)
        return transport, up

    for service in snapshot.services.values():
        service.connect = connect
    state = ProxyState(settings, ErrorLog(None, stream=io.StringIO()), AccessLog(None), snapshot)
    await state.dns.resolve("localhost")  # the first request would wait for it
    conn: HttpConnection = PROTOCOLS[parser](state, Listener("127.0.0.1", 8443))
    downstream = MemoryTransport({"peername": ("127.0.0.1", 40000), "tls": _Tls()})
    conn.connection_made(downstream)

    def mask(data: bytes) -> str:
        # what varies per run: the request id, the date, and latencies in whole ms (a loaded machine or a garbage
        # collection can make one request take a millisecond or more); the bytes around them are what is checked
        text = re.sub(r"[0-9a-f]{32}", "RID", data.decode("latin-1"))
        text = re.sub(r"(X-Kong-(?:Upstream|Proxy|Response)-Latency): \d+\r\n", r"\1: 0\r\n", text)
        return re.sub(r"Date: [^\r]*GMT", "Date: DATE", text)

    async def exchange() -> tuple[str, str]:
        for _ in range(20):
            if downstream.written:
                break
            await asyncio.sleep(0)
        pair = mask(b"".join(downstream.written)), mask(b"".join(upstream_sent))
        downstream.written.clear()
        upstream_sent.clear()
        return pair

    pairs = []
    for request in requests:
        conn.data_received(request)
        pairs.append(await exchange())
        method, target = request.decode("latin-1").split(" ")[:2]
        host = re.search(r"\r\nHost: ([^\r]*)", request.decode("latin-1"))
        match = snapshot.router.match(method, target.split("?")[0], host.group(1) if host else None, 8443, True)
        assert match is not None and match.lane is not None
    state.close()
    return pairs


@pytest.fixture(params=["httptools", "h11"])
def parser(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_plain_get(tmp_path: Path, parser: str) -> None:
    down, up = await _proxy(tmp_path, PLAIN_GET, NGINX, parser)
    assert down == (
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 24\r\nConnection: keep-alive\r\n"
        "Server: nginx/1.22.1\r\nDate: DATE\r\nX-Kong-Upstream-Latency: 0\r\nX-Kong-Proxy-Latency: 0\r\n"
        "Via: 1.1 kong/3.9.1\r\nX-Kong-Request-Id: RID\r\n\r\nhello from the upstream\n"
    )
    assert up == (
        "GET / HTTP/1.1\r\nVia: 1.1 kong/3.9.1\r\nHost: localhost:9443\r\nConnection: keep-alive\r\n"
        "X-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: 127.0.0.1\r\n"
        "X-Forwarded-Port: 8443\r\nX-Forwarded-Path: /\r\nX-Real-IP: 127.0.0.1\r\nX-Kong-Request-Id: RID\r\n\r\n"
    )


async def test_client_headers_and_upstream_via_trailer_connection_tokens(tmp_path: Path, parser: str) -> None:
    down, up = await _proxy(tmp_path, RICH_GET, MIXED, parser)
    assert down == (
        "HTTP/1.1 201 Created Thing\r\nDate: DATE\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n"
        "Connection: keep-alive\r\nVia: 1.1 b, 1.1 kong/3.9.1\r\nX-A: 1\r\nTrailer: X-T\r\n"
        "X-Kong-Upstream-Latency: 0\r\nX-Kong-Proxy-Latency: 0\r\nServer: kong/3.9.1\r\nX-Kong-Request-Id: RID\r\n"
        "\r\n5\r\nhello\r\n0\r\n\r\n"
    )
    assert up == (
        "GET /a/b?x=1 HTTP/1.1\r\nTE: trailers\r\nVia: 1.0 p, 1.1 kong/3.9.1\r\nHost: localhost:9443\r\n"
        "Connection: keep-alive\r\nX-Forwarded-For: 9.9.9.9, 127.0.0.1\r\nX-Forwarded-Proto: https\r\n"
        "X-Forwarded-Host: example.com\r\nX-Forwarded-Port: 8443\r\nX-Forwarded-Path: /a/b\r\n"
        "X-Real-IP: 127.0.0.1\r\nX-Kong-Request-Id: RID\r\nUser-Agent: t\r\nAccept: */*\r\nX-Other: o\r\n\r\n"
    )


async def test_head_http10_and_no_content(tmp_path: Path, parser: str) -> None:
    down, up = await _proxy(tmp_path, HEAD_10, NO_CONTENT, parser)
    assert down == (
        "HTTP/1.1 204 No Content\r\nDate: DATE\r\nContent-Length: 0\r\nConnection: keep-alive\r\nServer: s\r\n"
        "X-Kong-Upstream-Latency: 0\r\nX-Kong-Proxy-Latency: 0\r\nVia: 1.1 kong/3.9.1\r\nX-Kong-Request-Id: RID\r\n"
        "\r\n"
    )
    assert up.startswith("HEAD / HTTP/1.1\r\nVia: 1 kong/3.9.1\r\nHost: localhost:9443\r\n")
    assert "X-Forwarded-Host: kong\r\n" in up and "Referer: r\r\n" in up


async def test_response_tail_follows_the_headers_policy(tmp_path: Path, parser: str) -> None:
    down, _ = await _proxy(
        tmp_path, PLAIN_GET, NGINX, parser, headers="X-Kong-Upstream-Status, server", headers_upstream="off"
    )
    assert down.endswith("Date: DATE\r\nX-Kong-Upstream-Status: 200\r\n\r\nhello from the upstream\n")
    down, up = await _proxy(tmp_path, RICH_GET, MIXED, parser, headers="off", headers_upstream="off")
    assert "Via: 1.1 b\r\nX-A: 1\r\nTrailer: X-T\r\n\r\n5\r\n" in down
    assert "Server" not in down and "X-Kong" not in down and "X-Kong" not in up


async def test_a_lane_keeps_its_request_line_only_for_the_requests_it_fits(tmp_path: Path, parser: str) -> None:
    # one lane (same method, path and Host): its request line, Via and Host are made once, for requests without a
    # query string, TE or Via from an HTTP/1.1 client; the others get their own, and the lane's stays as it was
    lane = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
    own_via = b"GET /a HTTP/1.1\r\nHost: h\r\nVia: 1.0 p\r\nTE: trailers\r\n\r\n"
    query = b"GET /a?q=1 HTTP/1.1\r\nHost: h\r\n\r\n"
    http10 = b"GET /a HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\n\r\n"
    sent = [up for _, up in await _proxy_all(tmp_path, [lane, lane, own_via, query, http10, lane], NGINX, parser)]
    plain = "GET /a HTTP/1.1\r\nVia: 1.1 kong/3.9.1\r\nHost: localhost:9443\r\nConnection: keep-alive\r\n"
    assert sent[0].startswith(plain) and sent[1] == sent[0] and sent[5] == sent[0]
    assert sent[2].startswith(
        "GET /a HTTP/1.1\r\nTE: trailers\r\nVia: 1.0 p, 1.1 kong/3.9.1\r\nHost: localhost:9443\r\n"
    )
    assert sent[3].startswith("GET /a?q=1 HTTP/1.1\r\nVia: 1.1 kong/3.9.1\r\nHost: localhost:9443\r\n")
    assert sent[4].startswith("GET /a HTTP/1.1\r\nVia: 1 kong/3.9.1\r\nHost: localhost:9443\r\n")
