"""The ``ssl`` listener's own behaviour: plain HTTP on it, ALPN, protocol/cipher presets, tickets, timeouts, logs.

Each gateway here is started with the settings under test (Kong's kong.conf keys through ``KONG_*``); clients are
``openssl s_client``, curl and Python's ``ssl``.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator

import pytest

from tests.fixtures.admin_client import Admin
from tests.fixtures.gateway_process import GatewayProcess
from tests.fixtures.nginx import NginxServer
from tests.integration.tls.served.clients import curl, python_handshake, s_client, wait_until
from tests.integration.tls.served.conftest import start_ssl_gateway

PLAIN_HTTP_PAGE = (
    b"<html>\r\n<head><title>400 The plain HTTP request was sent to HTTPS port</title></head>\r\n<body>\r\n"
    b"<center><h1>400 Bad Request</h1></center>\r\n<center>The plain HTTP request was sent to HTTPS port</center>\r\n"
    b"</body>\r\n</html>\r\n"
)


def _with_route(gw: GatewayProcess, upstream: NginxServer) -> GatewayProcess:
    admin = Admin(gw)
    admin.post("/services", {"name": "s", "url": f"http://127.0.0.1:{upstream.port}"})
    admin.post("/services/s/routes", {"paths": ["/"]})
    admin.close()
    code = wait_until(
        lambda: curl("-k", "-o", "/dev/null", "-w", "%{http_code}", gw.proxy_ssl_url).stdout, lambda c: c == "200"
    )
    assert code == "200"
    return gw


@pytest.fixture(scope="module")
def default_gw(tmp_path_factory: pytest.TempPathFactory, upstream: NginxServer) -> Iterator[GatewayProcess]:
    gw = start_ssl_gateway(tmp_path_factory.mktemp("default"))
    try:
        yield _with_route(gw, upstream)
    finally:
        assert gw.stop() == 0


def _raw(port: int, data: bytes) -> tuple[bytes, bool]:
    """Send ``data`` over plain TCP; read until the server closes. Returns (bytes, closed_by_server)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        chunks: list[bytes] = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return b"".join(chunks), True
            chunks.append(chunk)


# ------------------------------------------------------------------------------------------ plain HTTP on TLS
def test_plain_http_on_tls_port_gets_nginx_400_page_and_close(default_gw: GatewayProcess) -> None:
    port = default_gw.proxy_ssl_port
    assert port is not None
    start = default_gw.error_log.stat().st_size
    data, closed = _raw(port, b"GET /anything HTTP/1.1\r\nHost: example.com\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert closed
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 400 Bad Request"
    headers = dict(line.split(b": ", 1) for line in lines[1:])
    assert body == PLAIN_HTTP_PAGE  # exactly one response: the pipelined second request is not answered
    assert headers[b"Content-Type"] == b"text/html"
    assert headers[b"Content-Length"] == str(len(PLAIN_HTTP_PAGE)).encode()
    assert headers[b"Connection"] == b"close"
    assert headers[b"Server"] == b"kong/3.9.1"  # Kong's server-level header_filter runs for nginx's own pages
    log = default_gw.error_log.read_bytes()[start:].decode()
    assert "client sent plain HTTP request to HTTPS port while reading client request headers" in log
    # curl sees the same
    res = curl("-o", "/dev/null", "-w", "%{http_code}", f"http://127.0.0.1:{port}/")
    assert res.stdout == "400"


def test_garbage_that_is_not_tls_is_parsed_as_http_like_nginx(default_gw: GatewayProcess) -> None:
    """nginx peeks one byte: not 0x16 and no high bit means plain HTTP, so noise gets the ordinary 400."""
    port = default_gw.proxy_ssl_port
    assert port is not None
    data, closed = _raw(port, b"\x01\x02 not http at all\r\n\r\n")
    assert closed and data.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"Bad request" in data and b"plain HTTP request" not in data


# ------------------------------------------------------------------------------------------ ALPN
def test_alpn_http11_only(default_gw: GatewayProcess) -> None:
    port = default_gw.proxy_ssl_port
    assert port is not None
    assert s_client(port, "alpn.test", "-alpn", "http/1.1").alpn == "http/1.1"
    assert s_client(port, "alpn.test", "-alpn", "h2,http/1.1").alpn == "http/1.1"
    assert s_client(port, "alpn.test").alpn is None  # no ALPN offered: none selected, HTTP/1.1 anyway
    # only h2 offered: nginx's HTTP/1 listener refuses with no_application_protocol (h2 is not spoken yet)
    h2_only = s_client(port, "alpn.test", "-alpn", "h2")
    assert not h2_only.ok and "no application protocol" in h2_only.output
    _, _, alpn = python_handshake(port, "alpn.test", alpn=["h2", "http/1.1"])
    assert alpn == "http/1.1"
    res = curl("-k", "-o", "/dev/null", "-w", "%{http_version} %{http_code}", default_gw.proxy_ssl_url)
    assert res.stdout == "1.1 200"


# ------------------------------------------------------------------------------------------ protocols and suites
def test_default_profile_is_tls12_and_tls13(default_gw: GatewayProcess) -> None:
    port = default_gw.proxy_ssl_port
    assert port is not None
    start = default_gw.error_log.stat().st_size
    assert s_client(port, "p.test", "-tls1_3").protocol == "TLSv1.3"
    tls12 = s_client(port, "p.test", "-tls1_2")
    assert (
        tls12.protocol == "TLSv1.2" and tls12.cipher is not None and tls12.cipher.startswith("ECDHE-")
    )  # intermediate: forward secrecy only
    old = s_client(port, "p.test", "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
    assert not old.ok
    assert not s_client(port, "p.test", "-tls1_2", "-cipher", "AES128-SHA").ok  # not in Mozilla intermediate
    log = wait_until(
        lambda: default_gw.error_log.read_bytes()[start:].decode(), lambda text: text.count("SSL_do_handshake") >= 2
    )
    assert "SSL_do_handshake() failed (SSL: " in log
    assert f"while SSL handshaking, client: 127.0.0.1, server: 127.0.0.1:{port}" in log
    assert "[error]" not in log


def test_modern_suite_refuses_tls12(tmp_path, upstream: NginxServer) -> None:
    gw = _with_route(start_ssl_gateway(tmp_path, {"KONG_SSL_CIPHER_SUITE": "modern"}), upstream)
    try:
        port = gw.proxy_ssl_port
        assert port is not None
        assert s_client(port, "m.test", "-tls1_3").protocol == "TLSv1.3"
        assert not s_client(port, "m.test", "-tls1_2").ok
    finally:
        assert gw.stop() == 0


def test_custom_suite_protocols_ciphers_tickets_and_timeout(tmp_path, upstream: NginxServer) -> None:
    env = {
        "KONG_SSL_CIPHER_SUITE": "custom",
        "KONG_SSL_PROTOCOLS": "TLSv1.2",
        "KONG_SSL_CIPHERS": "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES256-GCM-SHA384",
        "KONG_SSL_SESSION_TICKETS": "off",
    }
    gw = _with_route(start_ssl_gateway(tmp_path, env), upstream)
    try:
        port = gw.proxy_ssl_port
        assert port is not None
        assert not s_client(port, "c.test", "-tls1_3").ok
        rsa = s_client(port, "c.test", "-sigalgs", "RSA-PSS+SHA256:RSA+SHA256")
        assert (rsa.protocol, rsa.cipher) == ("TLSv1.2", "ECDHE-RSA-AES256-GCM-SHA384")
        assert not s_client(port, "c.test", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256").ok
        # tickets off: no ticket, but the session cache still resumes by session id (nginx + ssl_session_cache)
        session = tmp_path / "session.pem"
        first = s_client(port, "c.test", "-sess_out", str(session))
        assert first.ok and first.ticket_lifetime is None
        assert s_client(port, "c.test", "-sess_in", str(session)).reused
    finally:
        assert gw.stop() == 0


def test_session_tickets_and_timeout(tmp_path, upstream: NginxServer) -> None:
    gw = _with_route(start_ssl_gateway(tmp_path, {"KONG_SSL_SESSION_TIMEOUT": "300s"}), upstream)
    try:
        port = gw.proxy_ssl_port
        assert port is not None
        session = tmp_path / "session.pem"
        first = s_client(port, "t.test", "-tls1_2", "-sess_out", str(session))
        assert first.ticket_lifetime == 300
        assert s_client(port, "t.test", "-tls1_2", "-sess_in", str(session)).reused
        # TLS 1.3 tickets arrive after the handshake: a client that did a request has them (Python's ssl)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        saved = None
        for attempt in range(2):
            raw = socket.create_connection(("127.0.0.1", port), timeout=10)
            with ctx.wrap_socket(raw, server_hostname="t.test", session=saved) as tls:
                tls.sendall(b"GET / HTTP/1.1\r\nHost: t.test\r\nConnection: close\r\n\r\n")
                while tls.recv(65536):
                    pass
                assert tls.session_reused is (attempt == 1)
                saved = tls.session
        assert saved is not None and saved.ticket_lifetime_hint == 300
    finally:
        assert gw.stop() == 0
