"""Pooled TLS connections that the upstream closes: never handed out when idle, retried once when mid-request.

The upstream is a small asyncio TLS server (stdlib ``ssl``, as an independent peer) whose behaviour the test
drives: close every connection now (a close_notify while the gateway holds them idle), or close a connection
when its second request arrives, without answering.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.proxy.harness import config, read_response, route, running_gateway, service
from tests.integration.tls.upstream.pki import Pki

pytestmark = pytest.mark.timeout(30)

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok"


class Upstream(asyncio.Protocol):
    """Answers each request head with 200; ``server.drop_second`` closes a connection on its second request."""

    def __init__(self, server: TlsUpstream) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.requests = 0
        self.buf = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.connections.append(self)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while b"\r\n\r\n" in self.buf:
            _, self.buf = self.buf.split(b"\r\n\r\n", 1)
            self.requests += 1
            assert self.transport is not None
            if self.server.drop_second and self.requests == 2:
                self.transport.close()
                return
            self.transport.write(RESPONSE)


class TlsUpstream:
    def __init__(self) -> None:
        self.connections: list[Upstream] = []
        self.drop_second = False
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self, tmp_path: Path, pki: Pki) -> None:
        (tmp_path / "up.pem").write_text(pki.server_localhost.chain_pem)
        (tmp_path / "up.key").write_text(pki.server_localhost.key_pem)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(tmp_path / "up.pem", tmp_path / "up.key")
        self.server = await asyncio.get_running_loop().create_server(lambda: Upstream(self), "127.0.0.1", 0, ssl=ctx)
        self.port = self.server.sockets[0].getsockname()[1]

    def close_all(self) -> None:
        for conn in self.connections:
            if conn.transport is not None:
                conn.transport.close()

    def stop(self) -> None:
        self.close_all()
        if self.server is not None:
            self.server.close()


async def _get(port: int) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: stale.test\r\n\r\n")
        status, _, _, _ = await read_response(reader)
        return status
    finally:
        writer.close()


async def _until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Yield to the loop until ``predicate()`` holds (bounded): the gateway reacts to the close in callbacks."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.001)


async def test_an_idle_connection_closed_by_the_upstream_is_never_handed_out(tmp_path: Path, pki: Pki) -> None:
    upstream = TlsUpstream()
    await upstream.start(tmp_path, pki)
    svc = service("localhost", upstream.port, protocol="https", retries=0)
    try:
        async with running_gateway(tmp_path, config([svc], [route(svc)])) as gw:
            assert await _get(gw.port) == 200
            pool = gw.state.pool
            assert pool.idle_count() == 1
            upstream.close_all()  # close_notify + FIN on the idle pooled connection
            await _until(lambda: pool.idle_count() == 0)
            assert await _get(gw.port) == 200
            log = gw.error_log
    finally:
        upstream.stop()
    assert len(upstream.connections) == 2
    assert "[error]" not in log


async def test_a_reused_connection_closed_mid_request_is_retried_once_on_a_fresh_one(tmp_path: Path, pki: Pki) -> None:
    upstream = TlsUpstream()
    await upstream.start(tmp_path, pki)
    upstream.drop_second = True
    svc = service("localhost", upstream.port, protocol="https", retries=0)  # the retry does not use up a try
    try:
        async with running_gateway(tmp_path, config([svc], [route(svc)])) as gw:
            assert await _get(gw.port) == 200
            assert await _get(gw.port) == 200  # reused -> closed unanswered -> fresh connection
            log = gw.error_log
    finally:
        upstream.stop()
    assert [c.requests for c in upstream.connections] == [2, 1]
    assert log.count("upstream prematurely closed connection while reading response header from upstream") == 1
