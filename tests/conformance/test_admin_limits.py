"""The Admin API's body limit and timeouts, over real sockets, with nginx's answers and log lines.

Kong's admin server block has ``client_max_body_size 10m`` and nginx's default header/body/keepalive timeouts;
nginx 1.22 was run with the same settings to record what it answers and logs (see ``gateway/admin/server.py``).
The timeout tests shorten the settings to 1 s.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.admin.server import MAX_BODY
from tests.conformance.conftest import Admin, _start

NGINX_413 = (
    b"<html>\r\n<head><title>413 Request Entity Too Large</title></head>\r\n<body>\r\n"
    b"<center><h1>413 Request Entity Too Large</h1></center>\r\n"
    b"<hr><center>openresty</center>\r\n</body>\r\n</html>\r\n"
)
CONTEXT = r', client: 127\.0\.0\.1, server: kong_admin, request: "POST /services HTTP/1\.1", host: "admin\.test"'
HEAD = b"POST /services HTTP/1.1\r\nHost: admin.test\r\nContent-Type: application/json\r\n"


@pytest.fixture
async def limited(tmp_path: Any) -> AsyncIterator[Admin]:
    """An Admin API whose timeouts are 1 s, logging at info."""
    async for admin in _start(
        tmp_path,
        "sqlite",
        client_header_timeout="1s",
        client_body_timeout="1s",
        keepalive_timeout="1s",
        log_level="info",
    ):
        yield admin


async def _talk(port: int, *pieces: bytes, half_close: bool = False) -> tuple[bytes, float]:
    """Send ``pieces``, read until the server closes; what came back and the seconds from the last send to EOF."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for piece in pieces:
            writer.write(piece)
            await writer.drain()
        if half_close:
            writer.write_eof()
        sent = time.monotonic()
        data = await asyncio.wait_for(reader.read(), 20)
        return data, time.monotonic() - sent
    finally:
        writer.close()


def _status(data: bytes) -> int:
    return int(data.split(b" ", 2)[1])


def _body(data: bytes) -> bytes:
    return data.split(b"\r\n\r\n", 1)[1]


def _headers(data: bytes) -> dict[str, str]:
    lines = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")[1:]
    return {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}


# ------------------------------------------------------------------------------------------------ body size
async def test_content_length_over_10_mib_is_413_before_the_body_is_read(admin: Admin) -> None:
    before = admin.export()
    length = 20 * 1024 * 1024
    data, _ = await _talk(admin.port, HEAD + f"Content-Length: {length}\r\n\r\n".encode(), b"{" * 65536)
    assert data.startswith(b"HTTP/1.1 413 Request Entity Too Large\r\n")
    headers = _headers(data)
    assert headers["connection"] == "close" and headers["content-type"] == "text/html"
    assert headers["server"].startswith("kong/") and "access-control-allow-origin" not in headers
    assert _body(data) == NGINX_413
    assert re.search(
        rf"\[error\] \d+#0: \*\d+ client intended to send too large body: {length} bytes{CONTEXT}\n", admin.error_log()
    )
    assert '"POST /services HTTP/1.1" 413 180 ' in admin.access_log()
    assert admin.export() == before


async def test_chunked_body_growing_past_10_mib_is_413(admin: Admin) -> None:
    before = admin.export()
    chunk = b"100000\r\n" + b" " * 0x100000 + b"\r\n"  # 1 MiB chunks
    data, _ = await _talk(admin.port, HEAD + b"Transfer-Encoding: chunked\r\n\r\n", *[chunk] * 12)
    assert _status(data) == 413 and _body(data) == NGINX_413
    found = re.search(
        r"client intended to send too large chunked body: (\d+)\+(\d+) bytes" + CONTEXT, admin.error_log()
    )
    assert found is not None
    accepted, refused = int(found[1]), int(found[2])
    assert accepted == MAX_BODY  # ten whole chunks fit, the eleventh does not
    assert 0 < refused <= 0x100000
    assert admin.export() == before


async def test_a_body_of_exactly_10_mib_is_accepted(admin: Admin) -> None:
    doc = json.dumps({"name": "big", "host": "big.test"}).encode()
    body = doc[:-1] + b" " * (MAX_BODY - len(doc)) + b"}"
    assert len(body) == MAX_BODY
    res = await admin.http.post("/services", content=body, headers={"Content-Type": "application/json"})
    assert res.status_code == 201, res.text
    assert admin.db.dao("services").select("big") is not None


async def test_expect_100_continue(admin: Admin) -> None:
    """A body that will be refused is never asked for; an acceptable one gets ``100 Continue`` first."""
    too_big, _ = await _talk(admin.port, HEAD + b"Expect: 100-continue\r\nContent-Length: 10485761\r\n\r\n")
    assert too_big.startswith(b"HTTP/1.1 413 ")
    body = json.dumps({"name": "cont", "host": "c.test"}).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", admin.port)
    writer.write(
        HEAD + b"Expect: 100-continue\r\nConnection: close\r\n" + f"Content-Length: {len(body)}\r\n\r\n".encode()
    )
    assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10) == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(body)
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 201 Created\r\n")


# ------------------------------------------------------------------------------------------------ framing
@pytest.mark.parametrize(
    ("request_bytes", "line"),
    [
        (HEAD + b"Transfer-Encoding: chunked\r\n\r\nZZ\r\n", r"\[error\] .*client sent invalid chunked body" + CONTEXT),
        (
            HEAD + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            r'\[info\] .*client sent "Content-Length" and "Transfer-Encoding" headers at the same time '
            r"while reading client request headers" + CONTEXT,
        ),
    ],
    ids=["bad-chunk", "length-and-chunked"],
)
async def test_bad_framing_is_nginx_400_and_closes(limited: Admin, request_bytes: bytes, line: str) -> None:
    before = limited.export()
    data, _ = await _talk(limited.port, request_bytes)
    assert data.startswith(b"HTTP/1.1 400 Bad Request\r\n") and _headers(data)["connection"] == "close"
    assert b"<title>400 Bad Request</title>" in _body(data)
    assert re.search(line, limited.error_log())
    assert limited.export() == before


# ------------------------------------------------------------------------------------------------ timeouts
async def test_a_connection_that_sends_nothing_is_closed_after_client_header_timeout(limited: Admin) -> None:
    data, waited = await _talk(limited.port)
    assert data == b"" and 0.9 <= waited < 5
    assert re.search(
        r"\[info\] \d+#0: \*\d+ client timed out \(110: Connection timed out\) while waiting for request, "
        rf"client: 127\.0\.0\.1, server: 127\.0\.0\.1:{limited.port}\n",
        limited.error_log(),
    )


async def test_a_half_sent_head_is_closed_without_an_answer(limited: Admin) -> None:
    data, waited = await _talk(limited.port, b"POST /services HTTP/1.1\r\nHost: admin.test\r\n")
    assert data == b"" and 0.9 <= waited < 5
    line, _ = await _talk(limited.port, b"POST /servi")
    assert line == b""
    log = limited.error_log()
    assert re.search(
        r"\[info\] .*client timed out \(110: Connection timed out\) while reading client request headers"
        + CONTEXT
        + "\n",
        log,
    )
    assert re.search(
        r"client timed out \(110: Connection timed out\) while reading client request line, client: 127\.0\.0\.1, "
        r'server: kong_admin, request: "POST /servi"\n',
        log,
    )
    access = limited.access_log()
    assert '"POST /services HTTP/1.1" 408 0 ' in access and '"POST /servi" 408 0 ' in access


async def test_a_half_sent_body_is_closed_without_an_answer(limited: Admin) -> None:
    """nginx finalizes the request with 408, which closes the connection without a response and logs no error
    line (nginx 1.22 observed); the access log has the 408."""
    before = limited.export()
    data, waited = await _talk(limited.port, HEAD + b"Content-Length: 100\r\n\r\n", b'{"name":')
    assert data == b"" and 0.9 <= waited < 5
    assert '"POST /services HTTP/1.1" 408 0 ' in limited.access_log()
    assert "client timed out" not in limited.error_log()
    assert limited.export() == before


async def test_the_body_timeout_is_between_two_reads(limited: Admin) -> None:
    """A body that keeps arriving is not cut by the 1 s timer, even when it takes longer than that in all."""
    body = json.dumps({"name": "slow", "host": "slow.test"}).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", limited.port)
    writer.write(HEAD + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode())
    started = time.monotonic()
    for i in range(0, len(body), 8):
        await asyncio.sleep(0.3)  # pacing the client, not waiting for the server
        writer.write(body[i : i + 8])
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    assert time.monotonic() - started > 1.2
    assert answer.startswith(b"HTTP/1.1 201 Created\r\n")


async def test_an_idle_keepalive_connection_is_closed_after_keepalive_timeout(limited: Admin) -> None:
    data, waited = await _talk(limited.port, b"GET /status HTTP/1.1\r\nHost: admin.test\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200 OK\r\n") and 0.9 <= waited < 5
    assert "keepalive" not in limited.error_log()


async def test_a_client_closing_in_the_middle_of_its_body(limited: Admin) -> None:
    data, _ = await _talk(limited.port, HEAD + b"Content-Length: 100\r\n\r\n", b"{", half_close=True)
    assert data == b""
    assert re.search(r"\[info\] .*client prematurely closed connection" + CONTEXT, limited.error_log())
    assert '"POST /services HTTP/1.1" 400 0 ' in limited.access_log()


async def test_keepalive_timeout_zero_closes_after_every_response(tmp_path: Any) -> None:
    async for admin in _start(tmp_path, "sqlite", keepalive_timeout="0"):
        data, _ = await _talk(admin.port, b"GET /status HTTP/1.1\r\nHost: admin.test\r\n\r\n")
        assert data.startswith(b"HTTP/1.1 200 OK\r\n") and _headers(data)["connection"] == "close"
