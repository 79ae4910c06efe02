"""Layer 1's record (``X-Gateway-TLS-Downstream``) and Kong's debug headers, against the real gateway with an
``ssl`` listener, curl and ``openssl s_client``: each rule of Kong's SNI order, the key OpenSSL chose of an RSA +
ECDSA pair, a resumed session, and the headers' absence without the setting or without ``Kong-Debug``."""

from __future__ import annotations

import functools
import pathlib
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.fixtures.admin_client import Admin
from tests.fixtures.gateway_process import GatewayProcess
from tests.fixtures.nginx import NginxRunner, NginxServer
from tests.integration.tls.served.clients import s_client, wait_until
from tests.integration.tls.served.conftest import Pki, certificate_body, start_ssl_gateway
from tests.integration.tls.served.trace_clients import curl_head, parse_record, s_client_request

pytestmark = pytest.mark.timeout(90)

ECHO = """
server {
    listen 127.0.0.1:{port};
    location / { add_header X-Seen-Kong-Debug "$http_kong_debug" always; return 200 "ok\\n"; }
}
"""
DOWNSTREAM = "x-gateway-tls-downstream"


@dataclass
class Traced:
    gw: GatewayProcess
    admin: Admin
    route: dict[str, object]
    service: dict[str, object]
    certificates: dict[str, str]

    @property
    def port(self) -> int:
        assert self.gw.proxy_ssl_port is not None
        return self.gw.proxy_ssl_port


@pytest.fixture(scope="module")
def echo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NginxServer]:
    runner = NginxRunner(tmp_path_factory.mktemp("echo"))
    try:
        yield runner.start(ECHO)
    finally:
        runner.stop_all()


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory, pki: Pki, echo: NginxServer) -> Iterator[Traced]:
    gw = start_ssl_gateway(tmp_path_factory.mktemp("traced"), {"KONG_ALLOW_DEBUG_HEADER": "on"})
    admin = Admin(gw)
    try:
        service = admin.post("/services", {"name": "echo", "url": f"http://127.0.0.1:{echo.port}"})
        route = admin.post("/services/echo/routes", {"name": "all", "paths": ["/"]})
        certificates = {
            "exact": admin.post("/certificates", certificate_body(pki.example_rsa, pki.example_ec, ["exact.test"])),
            "prefix": admin.post("/certificates", certificate_body(pki.alt, None, ["*.wild.test"])),
            "suffix": admin.post("/certificates", certificate_body(pki.alt_alt_rsa, None, ["suffix.example.*"])),
            "star": admin.post("/certificates", certificate_body(pki.example_ec, None, ["*"])),
        }
        port = gw.proxy_ssl_port
        assert port is not None
        served = wait_until(lambda: s_client(port, "unknown.test"), lambda h: h.subjects[:1] == ["ssl-example.com"])
        assert served.subjects[:1] == ["ssl-example.com"], served.output
        yield Traced(gw, admin, route, service, {k: str(v["id"]) for k, v in certificates.items()})
    finally:
        admin.close()
        assert gw.stop() == 0


@pytest.mark.parametrize(
    ("sni", "rule", "entity", "cert"),
    [
        ("exact.test", "exact", "exact.test", "exact"),
        ("a.wild.test", "wildcard-prefix", "*.wild.test", "prefix"),
        ("suffix.example.org", "wildcard-suffix", "suffix.example.*", "suffix"),
        ("nothing.matches.test", "catch-all", "*", "star"),
        (None, "generated-default", "none", None),
    ],
)
def test_each_rule_of_kongs_sni_order(
    traced: Traced, sni: str | None, rule: str, entity: str, cert: str | None
) -> None:
    status, headers = curl_head(traced.port, sni)
    assert status == 200
    record = parse_record(headers[DOWNSTREAM])
    assert record["sni"] == (sni or "none")
    assert record["rule"] == rule
    assert record["sni_entity"] == entity
    assert record["certificate"] == (traced.certificates[cert] if cert is not None else "none")
    assert record["version"] == "TLSv1.3"
    assert record["alpn"] == "http/1.1"
    assert record["resumed"] == "no"
    assert record["cipher"].startswith("TLS_")
    # Kong's own debug headers ride along; plain-HTTP service: no upstream layers; no mtls-auth: nothing requested
    assert headers["kong-route-id"] == traced.route["id"]
    assert headers["kong-route-name"] == "all"
    assert headers["kong-service-id"] == traced.service["id"]
    assert headers["kong-service-name"] == "echo"
    assert parse_record(headers["x-gateway-tls-client-auth"]) == {"requested": "no"}
    assert "x-gateway-tls-upstream-cert" not in headers
    assert "x-gateway-tls-upstream-trust" not in headers
    assert headers["x-seen-kong-debug"] == "1"  # Kong forwards the request header upstream


@pytest.mark.parametrize(("sigalgs", "key"), [("ECDSA+SHA256", "ecdsa"), ("RSA-PSS+SHA256:RSA+SHA256", "rsa")])
def test_the_key_openssl_chose_of_an_rsa_and_ecdsa_pair(traced: Traced, sigalgs: str, key: str) -> None:
    status, headers = s_client_request(traced.port, "exact.test", "-sigalgs", sigalgs)
    assert status == 200
    record = parse_record(headers[DOWNSTREAM])
    assert (record["rule"], record["key"]) == ("exact", key)


def test_a_resumed_session(traced: Traced, tmp_path: pathlib.Path) -> None:
    session = str(tmp_path / "session.pem")
    status, first = s_client_request(traced.port, "a.wild.test", "-tls1_2", "-sess_out", session)
    assert status == 200 and parse_record(first[DOWNSTREAM])["resumed"] == "no"
    status, second = s_client_request(traced.port, "a.wild.test", "-tls1_2", "-sess_in", session)
    record = parse_record(second[DOWNSTREAM])
    assert status == 200
    assert (record["resumed"], record["rule"], record["version"]) == ("yes", "wildcard-prefix", "TLSv1.2")


def test_no_debug_headers_without_the_request_header(traced: Traced) -> None:
    status, headers = curl_head(traced.port, "exact.test", debug=False)
    assert status == 200
    assert not [name for name in headers if name.startswith(("kong-route", "kong-service", "x-gateway-tls"))]


def test_no_debug_headers_when_no_route_matched(traced: Traced) -> None:
    traced.admin.patch(f"/routes/{traced.route['id']}", {"paths": ["/only-here"]})
    try:
        status, headers = wait_until(lambda: curl_head(traced.port, "exact.test"), lambda r: r[0] == 404)
        assert status == 404
        assert not [name for name in headers if name.startswith(("kong-route", "kong-service", "x-gateway-tls"))]
    finally:
        traced.admin.patch(f"/routes/{traced.route['id']}", {"paths": ["/"]})
        wait_until(lambda: curl_head(traced.port, "exact.test"), lambda r: r[0] == 200)


def test_plain_http_listener_has_no_tls_layers(traced: Traced) -> None:
    import httpx

    res = httpx.get(traced.gw.proxy_url + "/", headers={"Kong-Debug": "1"}, timeout=10)
    assert res.status_code == 200
    assert res.headers["kong-route-id"] == traced.route["id"]
    assert not [name for name in res.headers if name.lower().startswith("x-gateway-tls")]


def test_ssl_cert_setting_and_no_headers_without_the_setting(
    tmp_path: pathlib.Path, pki: Pki, echo: NginxServer
) -> None:
    cert, key = tmp_path / "default.crt", tmp_path / "default.key"
    cert.write_text(pki.alt.chain_pem)
    key.write_text(pki.alt.key_pem)
    env = {"KONG_SSL_CERT": str(cert), "KONG_SSL_CERT_KEY": str(key)}
    for debug in ("on", "off"):
        gw = start_ssl_gateway(tmp_path / debug, {**env, "KONG_ALLOW_DEBUG_HEADER": debug})
        admin = Admin(gw)
        try:
            admin.post("/services", {"name": "echo", "url": f"http://127.0.0.1:{echo.port}"})
            admin.post("/services/echo/routes", {"paths": ["/"]})
            port = gw.proxy_ssl_port
            assert port is not None
            status, headers = wait_until(functools.partial(curl_head, port, None), lambda r: r[0] == 200)
            assert status == 200
            if debug == "on":
                record = parse_record(headers[DOWNSTREAM])
                assert (record["rule"], record["sni"], record["certificate"]) == ("ssl_cert", "none", "none")
                assert record["key"] == "rsa"
            else:
                names = [n for n in headers if n.startswith(("kong-route", "kong-service", "x-gateway-tls"))]
                assert names == []
                assert headers["x-seen-kong-debug"] == "1"
        finally:
            admin.close()
            assert gw.stop() == 0
