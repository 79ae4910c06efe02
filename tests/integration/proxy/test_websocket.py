"""WebSockets through http/https routes (issue 16, slice 2): the ``websockets`` library on both ends, the real
gateway between them.

Upstreams (``websockets`` servers in threads): a plain echo server, and a TLS echo server with its own CA that
requires a client certificate from that CA (``tls_verify`` on, the service's ``client_certificate``); both answer
``whoami`` with what they saw of the connection (the client certificate's CN on TLS). Clients connect with ``ws://``
to the plain listener and ``wss://`` to the ``ssl`` one.
"""

from __future__ import annotations

import json
import pathlib
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect
from websockets.sync.server import Server, ServerConnection, serve

from tests.fixtures.admin_client import Admin
from tests.fixtures.certs import make_ca, make_cert
from tests.fixtures.gateway_process import GatewayProcess, make_gateway
from tests.integration.downstream.upstream import running_upstream

TIMEOUT = 15.0


class EchoServer:
    """A ``websockets`` echo server in a thread; records the peers' closes (to prove the gateway closed upstream)."""

    def __init__(self, context: ssl.SSLContext | None = None) -> None:
        self.closed = threading.Event()
        self.server: Server = serve(self._handler, "127.0.0.1", 0, ssl=context, compression=None)
        self.port = self.server.socket.getsockname()[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _handler(self, ws: ServerConnection) -> None:
        try:
            for message in ws:
                if message == "whoami":
                    cert: Any = ws.socket.getpeercert() if isinstance(ws.socket, ssl.SSLSocket) else None
                    subject = dict(x[0] for x in cert["subject"]) if cert else {}
                    ws.send(json.dumps({"cn": subject.get("commonName"), "headers": _lower(ws.request)}))
                else:
                    ws.send(message)
        except ConnectionClosed:
            pass
        finally:
            self.closed.set()

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(5)


def _lower(request: Any) -> dict[str, str]:
    return {name.lower(): value for name, value in request.headers.raw_items()} if request is not None else {}


@dataclass
class WsSetup:
    gw: GatewayProcess
    plain: int
    tls: int
    echo: EchoServer
    tls_echo: EchoServer


def _client_ctx() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WsSetup]:
    directory = tmp_path_factory.mktemp("ws")
    upstream_ca = make_ca("ws upstream CA")
    server_cert = make_cert("127.0.0.1", upstream_ca, sans=["127.0.0.1"])
    client_ca = make_ca("ws client CA")
    gateway_client = make_cert("gateway-client", client_ca)
    (directory / "server.pem").write_text(server_cert.chain_pem + server_cert.key_pem)
    (directory / "client-ca.pem").write_text(client_ca.cert_pem)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(str(directory / "server.pem"))
    server_ctx.load_verify_locations(str(directory / "client-ca.pem"))
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    echo, tls_echo = EchoServer(), EchoServer(server_ctx)
    gw = make_gateway(directory, ssl=True).start()
    admin = Admin(gw)
    try:
        admin.post("/services", {"name": "echo", "url": f"http://127.0.0.1:{echo.port}"})
        admin.post("/services/echo/routes", {"name": "ws", "paths": ["/ws"]})
        admin.post("/services", {"name": "idle", "url": f"http://127.0.0.1:{echo.port}", "read_timeout": 700})
        admin.post("/services/idle/routes", {"name": "idle", "paths": ["/idle"]})
        admin.post("/services", {"name": "stall", "url": f"http://127.0.0.1:{echo.port}", "write_timeout": 700})
        admin.post("/services/stall/routes", {"name": "stall", "paths": ["/stall"]})
        ca_id = admin.post("/ca_certificates", {"cert": upstream_ca.cert_pem})["id"]
        cert_id = admin.post("/certificates", {"cert": gateway_client.cert_pem, "key": gateway_client.key_pem})["id"]
        admin.post(
            "/services",
            {
                "name": "tls-echo",
                "url": f"https://127.0.0.1:{tls_echo.port}",
                "tls_verify": True,
                "ca_certificates": [ca_id],
                "client_certificate": {"id": cert_id},
            },
        )
        admin.post("/services/tls-echo/routes", {"name": "wss-up", "paths": ["/tls-up"]})
        assert gw.proxy_ssl_port is not None
        setup = WsSetup(gw, gw.proxy_port, gw.proxy_ssl_port, echo, tls_echo)
        _wait_for(lambda: _status(setup, "/tls-up") == 426)  # the last route is live (a plain GET: 426 from it)
        yield setup
    finally:
        admin.close()
        assert gw.stop() == 0
        echo.stop()
        tls_echo.stop()
        errors = gw.error_log.read_text()
        assert "Traceback" not in errors and "[alert]" not in errors, errors


def _status(setup: WsSetup, path: str) -> int:
    return httpx.get(f"http://127.0.0.1:{setup.plain}{path}", timeout=TIMEOUT).status_code


def _wait_for(predicate: Any, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.05)


def _connect(url: str, max_queue: int = 16) -> ClientConnection:
    ctx = _client_ctx() if url.startswith("wss") else None
    return connect(
        url, ssl=ctx, open_timeout=TIMEOUT, close_timeout=2, proxy=None, compression=None, max_queue=max_queue
    )


def _echo_round(client: ClientConnection) -> None:
    client.send("hello")
    assert client.recv(timeout=TIMEOUT) == "hello"
    big = bytes(range(256)) * 4000  # ~1 MiB: beyond every socket buffer, backpressure both ways
    client.send(big)
    assert client.recv(timeout=TIMEOUT) == big


@pytest.mark.parametrize("scheme", ["ws", "wss"])
def test_echo_through_the_gateway(ws: WsSetup, scheme: str) -> None:
    port = ws.plain if scheme == "ws" else ws.tls
    with _connect(f"{scheme}://127.0.0.1:{port}/ws") as client:
        response = client.response
        assert response is not None
        assert response.status_code == 101
        headers = response.headers
        assert headers["Connection"].lower() == "upgrade" and headers["Upgrade"] == "websocket"
        assert "kong/" in headers["Via"] and len(headers["X-Kong-Request-Id"]) == 32
        _echo_round(client)
        client.send("whoami")
        seen = json.loads(client.recv(timeout=TIMEOUT))
        # what the upstream got: Kong's upgrade headers and X-Forwarded-Proto for the client's scheme
        assert seen["headers"]["upgrade"] == "websocket"
        assert seen["headers"]["connection"] == "keep-alive, Upgrade"
        assert seen["headers"]["x-forwarded-proto"] == ("http" if scheme == "ws" else "https")


def test_wss_to_a_tls_upstream_requiring_a_client_certificate(ws: WsSetup) -> None:
    """The service's upstream TLS profile (trust and client certificate) applies to the upgrade connection."""
    with _connect(f"wss://127.0.0.1:{ws.tls}/tls-up") as client:
        _echo_round(client)
        client.send("whoami")
        assert json.loads(client.recv(timeout=TIMEOUT))["cn"] == "gateway-client"
    with _connect(f"ws://127.0.0.1:{ws.plain}/tls-up") as client:
        _echo_round(client)


def test_closing_the_client_closes_upstream_and_logs_101(ws: WsSetup) -> None:
    ws.echo.closed.clear()
    with _connect(f"ws://127.0.0.1:{ws.plain}/ws?closing=1") as client:
        client.send("x" * 1000)
        assert client.recv(timeout=TIMEOUT) == "x" * 1000
    assert ws.echo.closed.wait(TIMEOUT), "the upstream side stayed open"

    def logged() -> bool:
        return any('"GET /ws?closing=1 HTTP/1.1" 101 ' in ln for ln in ws.gw.access_log.read_text().splitlines())

    _wait_for(logged)
    line = next(ln for ln in ws.gw.access_log.read_text().splitlines() if "/ws?closing=1" in ln)
    assert int(line.split('" 101 ')[1].split()[0]) >= 1000  # the tunnelled bytes sent to the client


def test_idle_tunnel_ends_after_the_services_read_timeout(ws: WsSetup) -> None:
    with _connect(f"ws://127.0.0.1:{ws.plain}/idle") as client:
        _echo_round(client)
        started = time.monotonic()
        with pytest.raises(ConnectionClosed):
            client.recv(timeout=TIMEOUT)
        assert time.monotonic() - started < TIMEOUT
    _wait_for(lambda: "while proxying upgraded connection" in ws.gw.error_log.read_text())
    line = next(ln for ln in ws.gw.error_log.read_text().splitlines() if "proxying upgraded" in ln)
    assert "[error]" in line and "upstream timed out (110: Connection timed out)" in line
    assert 'request: "GET /idle HTTP/1.1"' in line


def test_a_client_that_stops_reading_is_cut_after_the_write_timeout(ws: WsSetup) -> None:
    """The client sends and never reads: the echoes back up through the gateway until a side cannot take more for
    the service's write_timeout (0.7 s; its read_timeout is 60 s), then both sides are closed and it is logged."""
    started = time.monotonic()
    chunk = b"s" * (512 * 1024)
    with _connect(f"ws://127.0.0.1:{ws.plain}/stall", max_queue=1) as client, pytest.raises(ConnectionClosed):
        while time.monotonic() - started < TIMEOUT:
            client.send(chunk)  # blocks once everything is full, until the gateway closes
    assert time.monotonic() - started < TIMEOUT
    _wait_for(lambda: 'request: "GET /stall HTTP/1.1"' in ws.gw.error_log.read_text())
    line = next(ln for ln in ws.gw.error_log.read_text().splitlines() if "GET /stall" in ln)
    assert "timed out (110: Connection timed out) while proxying upgraded connection" in line


def test_a_non_101_answer_is_a_normal_response(tmp_path: pathlib.Path) -> None:
    """An upstream that does not switch answers the upgrade request like any other: relayed as it is."""
    with running_upstream() as port:
        gw = make_gateway(tmp_path).start()
        admin = Admin(gw)
        try:
            admin.post("/services", {"name": "http", "url": f"http://127.0.0.1:{port}"})
            admin.post("/services/http/routes", {"name": "r", "paths": ["/"]})
            url = f"ws://127.0.0.1:{gw.proxy_port}/no-switch"

            def answered_200() -> bool:
                try:
                    with _connect(url):
                        pass
                except InvalidStatus as exc:
                    return exc.response.status_code == 200
                return False

            _wait_for(answered_200)
            with pytest.raises(InvalidStatus) as caught, _connect(url):
                pass
            body = json.loads(caught.value.response.body or b"{}")
            sent = dict(body["headers"])
            assert sent["upgrade"] == "websocket" and sent["connection"] == "keep-alive, Upgrade"
        finally:
            admin.close()
            assert gw.stop() == 0
