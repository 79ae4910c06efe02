"""The proxy in front of a real nginx: forwarding, headers, keepalive reuse, bodies, generated errors."""

from __future__ import annotations

import asyncio
import json
import re
import tracemalloc
from pathlib import Path

import pytest

from tests.fixtures.nginx import NginxRunner
from tests.fixtures.ports import closed_port
from tests.integration.proxy.harness import config, read_response, route, running_gateway, service

pytestmark = pytest.mark.timeout(60)

ECHO = r"""
server {
    listen 127.0.0.1:{port};
    client_max_body_size 20m;
    location / {
        set $a "uri=$request_uri|host=$http_host|xff=$http_x_forwarded_for|xfp=$http_x_forwarded_proto";
        set $b "xfh=$http_x_forwarded_host|xfport=$http_x_forwarded_port|xfpath=$http_x_forwarded_path";
        set $c "xfprefix=$http_x_forwarded_prefix|realip=$http_x_real_ip|via=$http_via|rid=$http_x_kong_request_id";
        return 200 "$a|$b|$c|conn=$http_connection|te=$http_te|custom=$http_x_custom|cl=$content_length";
    }
    location /big { alias {prefix}/big.bin; }
    location /server { add_header Via "1.0 upstream-proxy"; return 200 "s"; }
}
"""


def _echo(body: bytes) -> dict[str, str]:
    return dict(part.split("=", 1) for part in body.decode().split("|"))


async def _request(port: int, data: bytes) -> tuple[int, dict[str, str], bytes, list[tuple[str, str]]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    try:
        return await read_response(reader)
    finally:
        writer.close()


async def test_get_forwards_with_kong_headers(tmp_path: Path, nginx: NginxRunner, http_parser: str) -> None:
    ng = nginx.start(ECHO)
    svc = service("127.0.0.1", ng.port, path="/base")
    cfg = config([svc], [route(svc, paths=["/api"], hosts=["example.com"])])
    async with running_gateway(tmp_path, cfg, http_parser=http_parser) as gw:
        status, headers, body, raw = await _request(
            gw.port,
            b"GET /api/users?q=1 HTTP/1.1\r\nHost: example.com\r\nX-Custom: yes\r\nConnection: keep-alive, X-Custom\r\n"
            b"TE: trailers, deflate\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n",
        )
    assert status == 200
    echo = _echo(body)
    assert echo["uri"] == "/base/users?q=1"
    assert echo["host"] == f"127.0.0.1:{ng.port}"
    assert echo["xff"] == "10.0.0.1, 127.0.0.1"
    assert echo["xfp"] == "http"
    assert echo["xfh"] == "example.com"
    assert echo["xfport"] == str(gw.port)
    assert echo["xfpath"] == "/api/users"
    assert echo["xfprefix"] == "/api"
    assert echo["realip"] == "127.0.0.1"
    assert echo["via"] == "1.1 kong/3.9.1"
    assert re.fullmatch(r"[0-9a-f]{32}", echo["rid"])
    assert echo["rid"] == headers["x-kong-request-id"]
    assert echo["conn"] == "keep-alive"
    assert echo["te"] == "trailers"
    assert echo["custom"] == ""  # listed in Connection: hop-by-hop, removed
    names = [n for n, _ in raw]
    assert names[:3] == ["Content-Type", "Content-Length", "Connection"]
    assert headers["server"].startswith("nginx/")
    assert headers["via"] == "1.1 kong/3.9.1"
    assert headers["x-kong-upstream-latency"].isdigit()
    assert headers["x-kong-proxy-latency"].isdigit()
    assert names[-1] == "X-Kong-Request-Id"
    lines = gw.access_lines()
    assert len(lines) == 1
    assert '"GET /api/users?q=1 HTTP/1.1" 200 ' in lines[0]
    assert f'kong_request_id: "{echo["rid"]}"' in lines[0]


async def test_upstream_via_is_appended(tmp_path: Path, nginx: NginxRunner) -> None:
    ng = nginx.start(ECHO)
    svc = service("127.0.0.1", ng.port)
    async with running_gateway(tmp_path, config([svc], [route(svc, paths=["/"], strip_path=False)])) as gw:
        status, headers, _, _ = await _request(gw.port, b"GET /server HTTP/1.1\r\nHost: x\r\nVia: 1.0 client\r\n\r\n")
    assert status == 200
    assert headers["via"] == "1.0 upstream-proxy, 1.1 kong/3.9.1"


async def test_headers_off_and_preserve_host(tmp_path: Path, nginx: NginxRunner) -> None:
    ng = nginx.start(ECHO)
    svc = service("127.0.0.1", ng.port)
    cfg = config([svc], [route(svc, paths=["/"], preserve_host=True)])
    async with running_gateway(tmp_path, cfg, headers="off", headers_upstream="off") as gw:
        status, headers, body, _ = await _request(gw.port, b"GET / HTTP/1.1\r\nHost: Keep.Me:1234\r\n\r\n")
        status404, headers404, _, _ = await _request(gw.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 200
    echo = _echo(body)
    assert echo["host"] == "Keep.Me:1234"
    assert echo["xfh"] == "keep.me"
    assert echo["rid"] == ""
    assert "via" not in headers and "x-kong-request-id" not in headers and "x-kong-proxy-latency" not in headers
    assert headers["server"].startswith("nginx/")
    assert status404 == 200  # route "/" catches everything
    assert "x-kong-response-latency" not in headers404


async def test_post_bodies_content_length_and_chunked(tmp_path: Path, nginx: NginxRunner, http_parser: str) -> None:
    ng = nginx.start(ECHO)
    svc = service("127.0.0.1", ng.port)
    async with running_gateway(tmp_path, config([svc], [route(svc, paths=["/"])]), http_parser=http_parser) as gw:
        status, _, body, _ = await _request(
            gw.port, b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world"
        )
        assert status == 200
        assert _echo(body)["cl"] == "11"
        status, _, body, _ = await _request(
            gw.port,
            b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        )
        assert status == 200
    ng.stop()
    lines = ng.access_log_lines()
    # $request_length counts the body nginx read: both bodies arrived
    assert '"POST /p HTTP/1.1" 200' in lines[0]
    assert '"POST /c HTTP/1.1" 200' in lines[1]
    assert int(lines[1].split()[-1]) > 11


async def test_upstream_keepalive_reuse_seen_by_nginx(tmp_path: Path, nginx: NginxRunner) -> None:
    ng = nginx.start(ECHO)
    svc = service("127.0.0.1", ng.port)
    async with running_gateway(tmp_path, config([svc], [route(svc, paths=["/"])])) as gw:
        for _ in range(3):  # three client connections, sequential requests
            reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
            for _ in range(10):
                writer.write(b"GET /k HTTP/1.1\r\nHost: x\r\n\r\n")
                status, _, _, _ = await read_response(reader)
                assert status == 200
            writer.close()
        assert gw.state.pool.hits == 29
    ng.stop()
    lines = ng.access_log_lines()
    assert len(lines) == 30
    connections = {line.split()[1] for line in lines}
    assert len(connections) == 1
    assert [int(line.split()[2]) for line in lines] == list(range(1, 31))


async def test_pool_size_zero_and_max_requests(tmp_path: Path, nginx: NginxRunner) -> None:
    ng = nginx.start(ECHO)
    svc = service("127.0.0.1", ng.port)
    async with running_gateway(
        tmp_path, config([svc], [route(svc, paths=["/"])]), upstream_keepalive_max_requests="4"
    ) as gw:
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        for _ in range(8):
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await read_response(reader))[0] == 200
        writer.close()
    async with running_gateway(
        tmp_path / "b", config([svc], [route(svc, paths=["/"])]), upstream_keepalive_pool_size="0"
    ) as gw:
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        for _ in range(3):
            writer.write(b"GET /zero HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await read_response(reader))[0] == 200
        writer.close()
    ng.stop()
    lines = ng.access_log_lines()
    first = [line for line in lines if '"GET / ' in line]
    assert [int(line.split()[2]) for line in first] == [1, 2, 3, 4, 1, 2, 3, 4]
    zero = [line for line in lines if "/zero" in line]
    assert len({line.split()[1] for line in zero}) == 3


async def test_10mb_download_streams_with_bounded_memory(tmp_path: Path, nginx: NginxRunner) -> None:
    size = 10 * 1024 * 1024
    ng = nginx.start(ECHO, files={"big.bin": bytes(range(256)) * (size // 256)})
    svc = service("127.0.0.1", ng.port)
    async with running_gateway(tmp_path, config([svc], [route(svc, paths=["/"], strip_path=False)])) as gw:
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port, limit=65536)
        tracemalloc.start()
        try:
            writer.write(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
            head = await reader.readuntil(b"\r\n\r\n")
            assert b" 200 " in head and b"Content-Length: 10485760" in head
            # stall the client: the proxy must stop reading from nginx instead of buffering 10 MB
            for _ in range(200):
                await asyncio.sleep(0)
            received = 0
            while received < size:
                chunk = await reader.read(65536)
                assert chunk
                received += len(chunk)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        writer.close()
    assert received == size
    assert peak < 4 * 1024 * 1024, peak


async def test_generated_404_formats(tmp_path: Path, nginx: NginxRunner) -> None:
    ng = nginx.start(ECHO)
    svc = service("127.0.0.1", ng.port)
    async with running_gateway(tmp_path, config([svc], [route(svc, hosts=["only.test"])])) as gw:
        status, headers, body, raw = await _request(gw.port, b"GET / HTTP/1.1\r\nHost: other\r\n\r\n")
        rid = headers["x-kong-request-id"]
        assert status == 404
        assert (
            body == b'{\n  "message":"no Route matched with those values",\n  "request_id":"' + rid.encode() + b'"\n}'
        )
        assert [n for n, _ in raw] == [
            "Date",
            "Content-Type",
            "Connection",
            "Content-Length",
            "X-Kong-Response-Latency",
            "Server",
            "X-Kong-Request-Id",
        ]
        assert headers["server"] == "kong/3.9.1"
        assert "via" not in headers
        status, headers, body, _ = await _request(gw.port, b"GET / HTTP/1.1\r\nHost: o\r\nAccept: text/plain\r\n\r\n")
        assert headers["content-type"] == "text/plain; charset=utf-8"
        assert (
            body == b"no Route matched with those values\nrequest_id: " + headers["x-kong-request-id"].encode() + b"\n"
        )
        status, headers, body, _ = await _request(gw.port, b"GET / HTTP/1.1\r\nHost: o\r\nAccept: text/html\r\n\r\n")
        assert b"<p>no Route matched with those values.</p>" in body
        # Content-Type does not count for kong.response.error: JSON
        status, headers, body, _ = await _request(
            gw.port, b"GET / HTTP/1.1\r\nHost: o\r\nContent-Type: text/html\r\n\r\n"
        )
        assert headers["content-type"] == "application/json; charset=utf-8"


async def test_502_connect_refused_with_retries_logged(tmp_path: Path, http_parser: str) -> None:
    port = closed_port()
    svc = service("127.0.0.1", port, retries=2)
    async with running_gateway(tmp_path, config([svc], [route(svc, paths=["/"])]), http_parser=http_parser) as gw:
        status, headers, body, _ = await _request(gw.port, b"GET /x HTTP/1.1\r\nHost: h.test\r\n\r\n")
        rid = headers["x-kong-request-id"]
        assert status == 502
        # nginx error_page: no Accept/Content-Type -> error_default_type (text/plain)
        assert body == b"An invalid response was received from the upstream server\nrequest_id: " + rid.encode() + b"\n"
        assert headers["via"] == "1.1 kong/3.9.1"
        assert headers["server"] == "kong/3.9.1"
        assert "x-kong-proxy-latency" in headers and "x-kong-upstream-latency" in headers
        assert "x-kong-response-latency" not in headers
        status, headers, body, _ = await _request(
            gw.port, b"GET /x HTTP/1.1\r\nHost: h.test\r\nContent-Type: application/json\r\n\r\n"
        )
        assert json.loads(body)["message"] == "An invalid response was received from the upstream server"
        log = gw.error_log
    suffix = (
        "connect() failed (111: Connection refused) while connecting to upstream, "
        f'client: 127.0.0.1, server: kong, request: "GET /x HTTP/1.1", upstream: "http://127.0.0.1:{port}/x", '
        f'host: "h.test", request_id: "{rid}"'
    )
    lines = [line for line in log.splitlines() if rid in line]
    assert len(lines) == 3  # retries=2 -> three tries, each logged
    for line in lines:
        assert re.fullmatch(r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[error\] \d+#0: \*1 " + re.escape(suffix), line), line
