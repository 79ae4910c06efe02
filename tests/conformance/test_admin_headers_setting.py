"""The ``headers`` setting applies to the Admin API as Kong's ``admin_header_filter`` applies it.

``Server`` is sent when ``server_tokens`` or ``Server`` is listed, ``X-Kong-Admin-Latency`` when ``latency_tokens``
or ``X-Kong-Admin-Latency`` is; ``headers = off`` sends neither (it was accepted and the headers sent anyway).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conformance.conftest import Admin, _start


@pytest.fixture(params=["off", "Server", "X-Kong-Admin-Latency", "server_tokens, latency_tokens"])
async def configured(request: pytest.FixtureRequest, tmp_path: Any) -> AsyncIterator[tuple[str, Admin]]:
    async for admin in _start(tmp_path, "sqlite", headers=request.param):
        yield request.param, admin


async def test_server_and_admin_latency_follow_the_headers_setting(configured: tuple[str, Admin]) -> None:
    value, admin = configured
    tokens = {token.strip().lower() for token in value.split(",")}
    want_server = bool(tokens & {"server", "server_tokens"})
    want_latency = bool(tokens & {"x-kong-admin-latency", "latency_tokens"})

    res = await admin.http.get("/")
    assert res.status_code == 200
    assert ("server" in res.headers) is want_server
    if want_server:
        assert res.headers["server"] == "kong/3.9.1"
    assert ("x-kong-admin-latency" in res.headers) is want_latency
    assert res.headers["access-control-allow-origin"] == "*"  # not governed by the setting

    # a page nginx makes itself (413 before the body is read) follows the same rule
    reader, writer = await asyncio.open_connection("127.0.0.1", admin.port)
    writer.write(
        b"POST /services HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 99999999\r\n\r\n"
    )
    await writer.drain()
    head = (await asyncio.wait_for(reader.read(), 10)).split(b"\r\n\r\n", 1)[0].decode("latin-1").lower()
    writer.close()
    assert head.startswith("http/1.1 413")
    assert ("\r\nserver: kong/3.9.1" in head) is want_server
    assert ("\r\nx-kong-admin-latency: 0" in head) is want_latency
