"""Upstream handshakes that fail before any certificate is seen: nginx's wording, status and retries."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from tests.fixtures.nginx import NginxRunner, nginx  # noqa: F401  (fixture)
from tests.integration.proxy.harness import config, read_response, route, running_gateway, service

pytestmark = pytest.mark.timeout(30)

PREFIX = r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[error\] \d+#0: \*\d+ "


async def _get(port: int) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: failing.test\r\n\r\n")
        status, headers, body, _ = await read_response(reader)
        return status, headers, body
    finally:
        writer.close()


def _line(reason: str, port: int, rid: str) -> str:
    return (
        PREFIX
        + re.escape(
            f"{reason} while SSL handshaking to upstream, client: 127.0.0.1, server: kong, "
            f'request: "GET / HTTP/1.1", upstream: "https://127.0.0.1:{port}/", host: "failing.test", '
        )
        + f'request_id: "{rid}"$'
    )


async def test_tls_to_a_plain_http_port(tmp_path: Path, nginx: NginxRunner) -> None:  # noqa: F811
    """OpenSSL rejects the plain-HTTP answer; each of the 2 tries logs ``SSL_do_handshake() failed``."""
    plain = nginx.start("server { listen 127.0.0.1:{port}; location / { return 200 'plain'; } }")
    svc = service("127.0.0.1", plain.port, protocol="https", retries=1)
    async with running_gateway(tmp_path, config([svc], [route(svc)]), debug_tls_errors="on") as gw:
        status, headers, _ = await _get(gw.port)
        log = gw.error_log
    assert status == 502
    assert headers["x-gateway-tls-error"].startswith("SSL_do_handshake() failed (SSL: error:SSL routines::")
    lines = re.findall(_line(headers["x-gateway-tls-error"], plain.port, headers["x-kong-request-id"]), log, re.M)
    assert len(lines) == 2


async def test_handshake_timeout_is_a_504(tmp_path: Path) -> None:
    """A peer that accepts and never answers the ClientHello: nginx's timeout line and 504 (no TLS header by
    default)."""
    held: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    svc = service("127.0.0.1", port, protocol="https", retries=0, connect_timeout=200)
    try:
        async with running_gateway(tmp_path, config([svc], [route(svc)])) as gw:
            status, headers, body = await _get(gw.port)
            log = gw.error_log
    finally:
        for writer in held:
            writer.close()
        server.close()
    assert status == 504
    assert b"The upstream server is timing out" in body
    assert "x-gateway-tls-error" not in headers
    reason = "upstream timed out (110: Connection timed out)"
    assert re.findall(_line(reason, port, headers["x-kong-request-id"]), log, re.M)
