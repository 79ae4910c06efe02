"""The prometheus plugin and our TLS metrics against the real ``gateway`` process, real nginx upstreams and real
clients; every ``/metrics`` is read with ``prometheus_client``'s parser.

- Request counters match the requests sent, per service, route, code and source; latency histograms count them;
  bandwidth is the exact bytes a raw client sent and received; a request no route matched is not counted.
- A failed upstream verification counts code 20 (unable to get local issuer certificate) for its service, and
  upstream connections count as opened or reused from the pool.
- An expiring certificate entity reports its notAfter for each of its SNIs; handshakes on the ``ssl`` listener are
  counted, and so is one the client refused.
- The Admin API's ``/metrics`` and the Status API's show the same page.
"""

from __future__ import annotations

import pathlib
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.fixtures.certs import Issued, days, make_ca, make_cert
from tests.fixtures.gateway_process import GatewayProcess, make_gateway
from tests.fixtures.metrics import scrape
from tests.fixtures.nginx import NginxRunner, NginxServer, nginx  # noqa: F401  (fixture)
from tests.fixtures.ports import free_port

UPSTREAMS = """
server {
    listen 127.0.0.1:{port};
    location / { return 200 "plain ok\\n"; }
}
server {
    listen 127.0.0.1:{port2} ssl;
    ssl_certificate {prefix}/upstream.pem;
    ssl_certificate_key {prefix}/upstream.key;
    location / { return 200 "tls ok\\n"; }
}
"""
ALL_FLAGS = {"status_code_metrics": True, "latency_metrics": True, "bandwidth_metrics": True}


@dataclass
class Setup:
    gw: GatewayProcess
    upstream: NginxServer
    root: Issued
    status_url: str

    def admin(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = httpx.request(method, f"{self.gw.admin_url}{path}", json=body, timeout=10)
        assert response.status_code in (200, 201), response.text
        return dict(response.json())


@pytest.fixture
def setup(tmp_path: pathlib.Path, nginx: NginxRunner) -> Iterator[Setup]:  # noqa: F811
    root = make_ca("Metrics Upstream Root", key_type="ec")
    inter = make_ca("Metrics Upstream Intermediate", issuer=root, key_type="ec")
    # leaf + intermediate up to a root the gateway does not trust: OpenSSL's 20, not a lone leaf's 21
    leaf = make_cert("localhost", issuer=inter, sans=["localhost"], key_type="ec")
    upstream = nginx.start(
        UPSTREAMS, files={"upstream.pem": leaf.chain_pem.encode(), "upstream.key": leaf.key_pem.encode()}, ports=2
    )
    status_port = free_port()
    gw = make_gateway(tmp_path, {"KONG_STATUS_LISTEN": f"127.0.0.1:{status_port}"}, ssl=True).start()
    try:
        yield Setup(gw, upstream, root, f"http://127.0.0.1:{status_port}")
    finally:
        assert gw.stop() == 0


def raw_get(port: int, path: str) -> tuple[bytes, bytes]:
    """One request on its own connection: (the exact bytes sent, the exact bytes received)."""
    request = f"GET {path} HTTP/1.1\r\nHost: metrics.test\r\nUser-Agent: raw\r\nConnection: close\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while data := sock.recv(65536):
            chunks.append(data)
    return request, b"".join(chunks)


def test_request_counters_match_the_requests_sent(setup: Setup) -> None:
    plain = setup.admin("POST", "/services", {"name": "plain", "url": f"http://127.0.0.1:{setup.upstream.port}"})
    setup.admin("POST", f"/services/{plain['id']}/routes", {"name": "r-plain", "paths": ["/plain"]})
    route = setup.admin("POST", f"/services/{plain['id']}/routes", {"paths": ["/unnamed"]})
    setup.admin("POST", "/plugins", {"name": "prometheus", "config": ALL_FLAGS})
    sent = received = 0
    for _ in range(3):
        request, response = raw_get(setup.gw.proxy_port, "/plain")
        assert response.startswith(b"HTTP/1.1 200 ")
        sent, received = sent + len(request), received + len(response)
    for _ in range(2):
        assert raw_get(setup.gw.proxy_port, "/unnamed/x")[1].startswith(b"HTTP/1.1 200 ")
    assert raw_get(setup.gw.proxy_port, "/nowhere")[1].startswith(b"HTTP/1.1 404 ")  # no route: not counted

    page = scrape(f"{setup.gw.admin_url}/metrics")
    requests = page.samples("kong_http_requests_total")
    assert sorted((s["service"], s["route"], s["code"], s["source"], v) for s, v in requests) == [
        ("plain", route["id"], "200", "service", 2.0),  # an unnamed route is labelled with its id
        ("plain", "r-plain", "200", "service", 3.0),
    ]
    assert all(s["workspace"] == "default" and s["consumer"] == "" for s, _ in requests)
    for family in ("kong_request_latency_ms_count", "kong_upstream_latency_ms_count", "kong_kong_latency_ms_count"):
        assert page.value(family, route="r-plain") == 3.0, family
    assert page.value("kong_bandwidth_bytes", route="r-plain", direction="ingress") == sent
    assert page.value("kong_bandwidth_bytes", route="r-plain", direction="egress") == received
    assert page.types["kong_bandwidth_bytes"] == "unknown"  # Kong's name kept (prometheus_client forces _total)
    assert page.value("kong_nginx_requests_total", subsystem="http") == 6.0
    assert page.total("kong_upstream_connections_total", service="plain") == 5.0
    assert page.value("kong_upstream_connections_total", service="plain", reused="false") >= 1  # type: ignore[operator]
    assert page.value("kong_nginx_metric_errors_total") == 0.0
    assert page.value("kong_datastore_reachable") == 1.0
    (node,) = page.samples("kong_node_info")
    assert node[0]["version"] == "3.9.1" and node[1] == 1.0
    assert node[0]["node_id"] == httpx.get(setup.gw.admin_url, timeout=10).json()["node_id"]
    (memory,) = page.samples("kong_memory_workers_lua_vms_bytes")
    assert memory[1] > 10 * 1024 * 1024 and memory[0]["pid"] == str(setup.gw.proc.pid)  # type: ignore[union-attr]

    status_page = scrape(f"{setup.status_url}/metrics")  # the Status API serves the same page
    assert status_page.samples("kong_http_requests_total") == requests


def test_metrics_before_any_prometheus_plugin_are_kongs_node_gauges_and_ours(setup: Setup) -> None:
    plain = setup.admin("POST", "/services", {"name": "plain", "url": f"http://127.0.0.1:{setup.upstream.port}"})
    setup.admin("POST", f"/services/{plain['id']}/routes", {"name": "r-plain", "paths": ["/plain"]})
    assert raw_get(setup.gw.proxy_port, "/plain")[1].startswith(b"HTTP/1.1 200 ")
    page = scrape(f"{setup.status_url}/metrics")
    assert page.value("kong_nginx_requests_total", subsystem="http") == 1.0
    assert page.samples("kong_http_requests_total") == []  # Kong: only its node gauges until a plugin is configured
    assert "kong_nginx_metric_errors_total" not in page.by_name
    assert page.value("kong_upstream_connections_total", service="plain", reused="false") == 1.0  # ours: always on


def test_a_failed_upstream_verification_counts_code_20(setup: Setup) -> None:
    port = setup.upstream.ports[1]
    strict = setup.admin(
        "POST", "/services", {"name": "strict", "url": f"https://localhost:{port}", "tls_verify": True, "retries": 0}
    )
    setup.admin("POST", f"/services/{strict['id']}/routes", {"paths": ["/strict"]})
    ca = setup.admin("POST", "/ca_certificates", {"cert": setup.root.cert_pem})
    trusted = setup.admin(
        "POST",
        "/services",
        {"name": "trusted", "url": f"https://localhost:{port}", "tls_verify": True, "ca_certificates": [ca["id"]]},
    )
    setup.admin("POST", f"/services/{trusted['id']}/routes", {"paths": ["/trusted"]})
    setup.admin("POST", "/plugins", {"name": "prometheus", "config": {"status_code_metrics": True}})
    for _ in range(2):
        assert httpx.get(f"{setup.gw.proxy_url}/strict", timeout=10).status_code == 502
    with httpx.Client(timeout=10) as client:  # keepalive downstream and upstream: one TLS connection, then reuse
        for _ in range(3):
            assert client.get(f"{setup.gw.proxy_url}/trusted").status_code == 200

    page = scrape(f"{setup.gw.admin_url}/metrics")
    assert page.samples("kong_upstream_tls_verify_failures_total") == [({"service": "strict", "code": "20"}, 2.0)]
    assert page.value("kong_tls_handshake_failures_total", side="upstream", reason="certificate verify failed") == 2
    assert page.value("kong_http_requests_total", service="strict", code="502", source="kong") == 2.0
    assert page.value("kong_upstream_connections_total", service="trusted", reused="false") == 1.0
    assert page.value("kong_upstream_connections_total", service="trusted", reused="true") == 2.0
    assert page.value("kong_upstream_tls_sessions_total", service="trusted", resumed="false") == 1.0
    assert page.total("kong_upstream_tls_sessions_total", service="strict") == 0  # a failed handshake is no session


def test_certificates_report_their_expiry_and_handshakes_are_counted(setup: Setup) -> None:
    soon = make_cert("soon.test", issuer=make_ca("Expiring Root", key_type="ec"), not_after=days(2), key_type="ec")
    cert = setup.admin(
        "POST", "/certificates", {"cert": soon.chain_pem, "key": soon.key_pem, "snis": ["soon.test", "b.soon.test"]}
    )
    port = setup.gw.proxy_ssl_port
    assert port is not None
    accept_any = ssl.create_default_context()
    accept_any.check_hostname, accept_any.verify_mode = False, ssl.CERT_NONE
    for _ in range(2):
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as sock,
            accept_any.wrap_socket(sock, server_hostname="soon.test") as tls,
        ):
            assert tls.version() == "TLSv1.3"
    tls12 = ssl.create_default_context()
    tls12.check_hostname, tls12.verify_mode = False, ssl.CERT_NONE
    tls12.maximum_version = ssl.TLSVersion.TLSv1_2
    session = None
    for _ in range(2):  # the second connection offers the first one's session ticket and resumes
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as sock,
            tls12.wrap_socket(sock, server_hostname="soon.test", session=session) as tls,
        ):
            session = tls.session
            resumed = tls.session_reused
    assert resumed
    refusing = ssl.create_default_context()  # trusts no private CA: the client aborts the handshake
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock, pytest.raises(ssl.SSLCertVerificationError):
        refusing.wrap_socket(sock, server_hostname="soon.test")

    not_after = soon.cert.not_valid_after_utc.timestamp()
    page = scrape(f"{setup.status_url}/metrics")
    assert page.value("kong_tls_certificate_expiry_timestamp_seconds", certificate=cert["id"], sni="soon.test") == (
        not_after
    )
    assert page.value("kong_tls_certificate_expiry_timestamp_seconds", certificate=cert["id"], sni="b.soon.test") == (
        not_after
    )
    defaults = {s["certificate"] for s, _ in page.samples("kong_tls_certificate_expiry_timestamp_seconds", sni="")}
    assert defaults == {"kong-default", "kong-default-ecdsa"}  # the generated pair the ssl listener serves
    listener = f"127.0.0.1:{port}"
    assert page.value("kong_tls_handshakes_total", listener=listener, version="TLSv1.3", resumed="false") == 2.0
    assert page.value("kong_tls_handshakes_total", listener=listener, version="TLSv1.2", resumed="false") == 1.0
    assert page.value("kong_tls_handshakes_total", listener=listener, version="TLSv1.2", resumed="true") == 1.0
    failures = page.samples("kong_tls_handshake_failures_total", side="downstream")
    assert len(failures) == 1 and "unknown ca" in failures[0][0]["reason"] and failures[0][1] == 1.0, failures


def test_upstream_sessions_resumed_without_the_pool(tmp_path: pathlib.Path, nginx: NginxRunner) -> None:  # noqa: F811
    """With the keepalive pool off every request opens a TLS connection: the first is a full handshake, the next
    ones resume its session (``proxy_ssl_session_reuse``), and nginx agrees (``$ssl_session_reused``)."""
    root = make_ca("Sessions Root", key_type="ec")
    leaf = make_cert("localhost", issuer=root, sans=["localhost"], key_type="ec")
    upstream = nginx.start(
        UPSTREAMS.replace('return 200 "tls ok\\n";', 'return 200 "reused=$ssl_session_reused\\n";'),
        files={"upstream.pem": leaf.chain_pem.encode(), "upstream.key": leaf.key_pem.encode()},
        ports=2,
    )
    gw = make_gateway(tmp_path, {"KONG_UPSTREAM_KEEPALIVE_POOL_SIZE": "0"}).start()
    try:
        setup = Setup(gw, upstream, root, "")
        ca = setup.admin("POST", "/ca_certificates", {"cert": root.cert_pem})
        url = f"https://localhost:{upstream.ports[1]}"
        service = setup.admin("POST", "/services", {"name": "s", "url": url, "ca_certificates": [ca["id"]]})
        setup.admin("POST", f"/services/{service['id']}/routes", {"paths": ["/s"]})
        bodies = [httpx.get(f"{gw.proxy_url}/s", timeout=10).text for _ in range(3)]
        page = scrape(f"{gw.admin_url}/metrics")
    finally:
        assert gw.stop() == 0
    assert bodies == ["reused=.\n", "reused=r\n", "reused=r\n"]
    assert page.value("kong_upstream_tls_sessions_total", service="s", resumed="false") == 1.0
    assert page.value("kong_upstream_tls_sessions_total", service="s", resumed="true") == 2.0
    assert page.value("kong_upstream_connections_total", service="s", reused="false") == 3.0
