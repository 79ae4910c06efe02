"""Hostile and broken clients on the ``ssl`` listener leave the gateway serving everyone else.

One gateway (``client_header_timeout = 2s``, which also bounds the TLS handshake, as in nginx) faces: a flood of
200 connections sending random bytes, clients that stall before, inside and after the ClientHello, and clients
that vanish without a close_notify (FIN, and RST) in the middle of a request. After each, and during the flood
and the stalls, a well-behaved HTTPS request must succeed, the process must still be running, and nothing may
have been logged above ``info`` (no ``[error]``, no traceback).
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import ssl
import struct
import time
from collections.abc import Iterator

import pytest

from tests.fixtures.admin_client import Admin
from tests.fixtures.gateway_process import GatewayProcess
from tests.fixtures.nginx import NginxServer
from tests.integration.tls.served.clients import HttpsKeepalive, curl
from tests.integration.tls.served.conftest import start_ssl_gateway

HANDSHAKE_TIMEOUT = 2  # seconds (client_header_timeout)
FLOOD = 200


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, upstream: NginxServer) -> Iterator[GatewayProcess]:
    gw = start_ssl_gateway(
        tmp_path_factory.mktemp("resilience"), {"KONG_CLIENT_HEADER_TIMEOUT": f"{HANDSHAKE_TIMEOUT}s"}
    )
    admin = Admin(gw)
    try:
        admin.post("/services", {"name": "s", "url": f"http://127.0.0.1:{upstream.port}"})
        admin.post("/services/s/routes", {"paths": ["/"]})
        deadline = time.monotonic() + 10
        while _good_request(gw) != "200" and time.monotonic() < deadline:
            pass  # each probe is a real request: waits for the snapshot with the route
        yield gw
    finally:
        admin.close()
        assert gw.stop() == 0
        output = gw.drain_output()
        assert "Traceback" not in output and "Fatal error" not in output, output


def _good_request(gw: GatewayProcess) -> str:
    res = curl(
        "-k",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--resolve",
        f"good.test:{gw.proxy_ssl_port}:127.0.0.1",
        f"https://good.test:{gw.proxy_ssl_port}/",
    )
    return res.stdout


def _assert_healthy(gw: GatewayProcess, log_start: int) -> str:
    assert gw.alive
    assert _good_request(gw) == "200"
    log = gw.error_log.read_bytes()[log_start:].decode("utf-8", "replace")
    assert "[error]" not in log and "[crit]" not in log and "[alert]" not in log, log
    assert "Traceback" not in gw.drain_output()
    return log


def _client_hello(server_hostname: str = "good.test") -> bytes:
    """A real ClientHello from Python's ``ssl`` over memory BIOs."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=server_hostname)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def _garbage(rng: random.Random, i: int) -> bytes:
    body = rng.randbytes(rng.randint(1, 4096))
    kind = i % 4
    if kind == 0:  # a TLS handshake record header with a random length, then noise
        return b"\x16\x03\x01" + struct.pack("!H", rng.randint(0, 0xFFFF)) + body
    if kind == 1:  # SSLv2-looking first byte
        return bytes([0x80 | rng.randint(0, 0x7F)]) + body
    if kind == 2:  # a plausible-looking HTTP request line made of noise
        return b"GET /" + body.replace(b"\n", b"") + b"\r\n\r\n"
    return body


async def _one_garbage_client(port: int, payload: bytes) -> bool:
    """Send ``payload``, half-close, read until the server closes; True when it did (bounded)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
        async with asyncio.timeout(HANDSHAKE_TIMEOUT + 8):
            while await reader.read(65536):
                pass
        return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False
    finally:
        writer.close()


async def test_garbage_flood_leaves_the_gateway_serving(gateway: GatewayProcess) -> None:
    port = gateway.proxy_ssl_port
    assert port is not None
    start = gateway.error_log.stat().st_size
    rng = random.Random(20240603)
    flood = [asyncio.create_task(_one_garbage_client(port, _garbage(rng, i))) for i in range(FLOOD)]
    # during the flood, good clients are served
    during = await asyncio.gather(*(asyncio.to_thread(_good_request, gateway) for _ in range(5)))
    closed = await asyncio.gather(*flood)
    assert during == ["200"] * 5
    assert all(closed), f"{closed.count(False)} garbage connections were not closed by the gateway"
    log = _assert_healthy(gateway, start)
    assert "SSL_do_handshake() failed" in log or "peer closed connection in SSL handshake" in log


def test_stalled_handshakes_time_out_and_others_are_served(gateway: GatewayProcess) -> None:
    port = gateway.proxy_ssl_port
    assert port is not None
    start = gateway.error_log.stat().st_size
    hello = _client_hello()
    stalled = []
    # 1. connects and sends nothing; 2. half a ClientHello; 3. a whole ClientHello, then never its Finished
    for payload in (b"", hello[: len(hello) // 2], hello):
        sock = socket.create_connection(("127.0.0.1", port), timeout=HANDSHAKE_TIMEOUT + 8)
        if payload:
            sock.sendall(payload)
        stalled.append(sock)
    try:
        began = time.monotonic()
        # while they stall, a keepalive client does several requests
        good = HttpsKeepalive(port, "good.test")
        assert [good.get()[0] for _ in range(3)] == [200, 200, 200]
        good.close()
        # the gateway ends each stalled handshake after the timeout (recv sees EOF or a reset)
        for sock in stalled:
            try:
                while sock.recv(65536):
                    pass
            except ConnectionResetError:
                pass
        elapsed = time.monotonic() - began
        assert HANDSHAKE_TIMEOUT - 0.5 <= elapsed < HANDSHAKE_TIMEOUT + 8
    finally:
        for sock in stalled:
            sock.close()
    log = _assert_healthy(gateway, start)
    assert log.count("client timed out (110: Connection timed out) while SSL handshaking") >= 3, log


def test_clients_vanishing_without_close_notify(gateway: GatewayProcess) -> None:
    port = gateway.proxy_ssl_port
    assert port is not None
    start = gateway.error_log.stat().st_size
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    for how in ("fin-mid-request", "rst-mid-request", "fin-after-request", "rst-after-handshake"):
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        tls = ctx.wrap_socket(raw, server_hostname="good.test")
        if how.endswith("mid-request"):
            tls.sendall(b"GET / HTTP/1.1\r\nHost: good.te")
        elif how == "fin-after-request":
            tls.sendall(b"GET / HTTP/1.1\r\nHost: good.test\r\n\r\n")
        # leave without SSL_shutdown: take the descriptor away from the TLS object and close it directly
        plain = socket.socket(fileno=tls.detach())
        if how.startswith("rst"):
            plain.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        plain.close()
        assert _good_request(gateway) == "200", how
    _assert_healthy(gateway, start)


def test_keepalive_client_closing_without_close_notify_between_requests(gateway: GatewayProcess) -> None:
    port = gateway.proxy_ssl_port
    assert port is not None
    conn = HttpsKeepalive(port, "good.test")
    assert conn.get()[0] == 200
    plain = socket.socket(fileno=conn.sock.detach())
    plain.close()
    assert gateway.alive and _good_request(gateway) == "200"
    assert os.path.exists(gateway.error_log)
