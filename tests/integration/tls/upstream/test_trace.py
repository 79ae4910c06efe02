"""Layers 3 and 4's records (``X-Gateway-TLS-Upstream-Cert`` / ``-Upstream-Trust``) against the real gateway and
nginx upstreams: each client-certificate origin, verify / trust / depth from the service and from the globals, the
verification codes 18/20/21/22/10 and the host mismatch (on the 502 itself), pooled and new connections, and a
resumed upstream session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.gateway_process import running_gateway
from tests.integration.tls.served.trace_clients import parse_record
from tests.integration.tls.upstream.kong import KongClient
from tests.integration.tls.upstream.pki import Pki
from tests.integration.tls.upstream.upstreams import Upstreams

pytestmark = pytest.mark.timeout(90)

CERT, TRUST = "x-gateway-tls-upstream-cert", "x-gateway-tls-upstream-trust"


@pytest.fixture(scope="module")
def kong(tmp_path_factory: pytest.TempPathFactory, upstreams: Upstreams) -> Iterator[KongClient]:
    env = {"KONG_LOG_LEVEL": "debug", "KONG_ALLOW_DEBUG_HEADER": "on"}
    with running_gateway(tmp_path_factory.mktemp("kong"), env) as gw:
        client = KongClient(gw)
        try:
            yield client
        finally:
            client.close()


def _service(kong: KongClient, name: str, url: str, **fields: Any) -> str:
    svc = kong.post("/services", {"name": name, "url": url, "retries": 0, **fields})
    kong.post("/routes", {"name": f"{name}-route", "hosts": [f"{name}.test"], "service": {"id": svc["id"]}})
    return str(svc["id"])


def _traced(kong: KongClient, name: str) -> tuple[int, dict[str, str], dict[str, str]]:
    res = kong.proxy.get("/", headers={"Host": f"{name}.test", "Kong-Debug": "1"})
    return res.status_code, parse_record(res.headers[CERT]), parse_record(res.headers[TRUST])


def _root_ca(kong: KongClient, pki: Pki) -> str:
    for ca in kong.admin.get("/ca_certificates").json()["data"]:
        if ca["cert"] == pki.root.cert_pem:
            return str(ca["id"])
    return str(kong.post("/ca_certificates", {"cert": pki.root.cert_pem})["id"])


def test_no_client_certificate_and_everything_default_then_pooled(kong: KongClient, upstreams: Upstreams) -> None:
    _service(kong, "defaults", f"https://localhost:{upstreams.ports['tls']}/")
    status, cert, trust = _traced(kong, "defaults")
    assert status == 200
    assert cert == {"from": "none"}
    assert trust == {
        "verify": "off",
        "verify_from": "default",
        "trust": "empty",
        "trust_from": "default",
        "depth": "1",
        "depth_from": "default",
        "sni": "localhost",
        "host_checked": "none",
        "result": "not-checked",
        "resumed": "no",
        "connection": "new",
    }
    status, _, again = _traced(kong, "defaults")
    assert (status, again["connection"], again["resumed"]) == (200, "pooled", "no")


def test_service_settings_win_and_the_check_passes(kong: KongClient, pki: Pki, upstreams: Upstreams) -> None:
    root = _root_ca(kong, pki)
    url = f"https://localhost:{upstreams.ports['deep']}/"
    _service(kong, "service-wins", url, tls_verify=True, ca_certificates=[root], tls_verify_depth=2)
    status, _, trust = _traced(kong, "service-wins")
    assert status == 200
    assert (trust["verify"], trust["verify_from"]) == ("on", "service")
    assert (trust["trust"], trust["trust_from"]) == (f"ca_certificates:{root}", "service")
    assert (trust["depth"], trust["depth_from"]) == ("2", "service")
    assert (trust["host_checked"], trust["result"]) == ("localhost", "ok")


@pytest.mark.parametrize(
    ("server", "with_ca", "result"),
    [
        ("tls", False, "20:unable to get local issuer certificate"),
        ("self_signed", True, "18:self-signed certificate"),
        ("leaf_only", True, "21:unable to verify the first certificate"),
        ("deep", True, "22:certificate chain too long"),
        ("expired", True, "10:certificate has expired"),
    ],
)
def test_verification_codes_on_the_502(
    kong: KongClient, pki: Pki, upstreams: Upstreams, server: str, with_ca: bool, result: str
) -> None:
    name = f"code-{server.replace('_', '-')}"
    cas = [_root_ca(kong, pki)] if with_ca else None
    _service(kong, name, f"https://localhost:{upstreams.ports[server]}/", tls_verify=True, ca_certificates=cas)
    status, cert, trust = _traced(kong, name)
    assert status == 502
    assert cert == {"from": "none"}
    assert trust["result"] == result
    assert trust["trust"] == (f"ca_certificates:{cas[0]}" if cas else "empty")
    assert (trust["resumed"], trust["connection"]) == ("none", "new")


def test_host_mismatch(kong: KongClient, pki: Pki, upstreams: Upstreams) -> None:
    """The certificate says ``localhost``, the upstream host is the IP: no SNI is sent, the IP is checked."""
    root = _root_ca(kong, pki)
    _service(kong, "mismatch", f"https://127.0.0.1:{upstreams.ports['tls']}/", tls_verify=True, ca_certificates=[root])
    status, _, trust = _traced(kong, "mismatch")
    assert status == 502
    assert (trust["sni"], trust["host_checked"], trust["result"]) == ("none", "127.0.0.1", "host-mismatch")


def test_client_certificate_from_the_service_and_from_the_upstream_entity(
    kong: KongClient, pki: Pki, upstreams: Upstreams
) -> None:
    port = upstreams.ports["mtls"]
    one = str(kong.post("/certificates", {"cert": pki.client_one.chain_pem, "key": pki.client_one.key_pem})["id"])
    two = str(kong.post("/certificates", {"cert": pki.client_two.chain_pem, "key": pki.client_two.key_pem})["id"])
    _service(kong, "from-service", f"https://127.0.0.1:{port}/", client_certificate={"id": one})
    status, cert, _ = _traced(kong, "from-service")
    assert status == 200
    assert cert == {"from": "service", "certificate": one, "subject": "CN=example.com"}

    kong.post("/upstreams", {"name": "trace-mtls", "client_certificate": {"id": two}})
    kong.post("/upstreams/trace-mtls/targets", {"target": f"127.0.0.1:{port}"})
    _service(kong, "from-upstream", "https://trace-mtls/")
    status, cert, trust = _traced(kong, "from-upstream")
    assert status == 200
    assert cert == {"from": "upstream", "certificate": two, "subject": "CN=example2.com"}
    assert trust["sni"] == "none"  # Kong sends the target's host (an IP here) as Host, so no SNI


def test_globals_win_when_the_service_says_nothing(tmp_path: Path, pki: Pki, upstreams: Upstreams) -> None:
    """``client_ssl_cert``, ``proxy_ssl_verify``, ``proxy_ssl_trusted_certificate`` and ``proxy_ssl_verify_depth``,
    without keepalive: each request opens a new connection, which resumes the previous one's session."""
    files = {
        "client.pem": pki.client_one.chain_pem,
        "client.key": pki.client_one.key_pem,
        "root.pem": pki.root.cert_pem,
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    env = {
        "KONG_LOG_LEVEL": "debug",
        "KONG_ALLOW_DEBUG_HEADER": "on",
        "KONG_CLIENT_SSL": "on",
        "KONG_CLIENT_SSL_CERT": str(tmp_path / "client.pem"),
        "KONG_CLIENT_SSL_CERT_KEY": str(tmp_path / "client.key"),
        "KONG_PROXY_SSL_VERIFY": "on",
        "KONG_PROXY_SSL_TRUSTED_CERTIFICATE": str(tmp_path / "root.pem"),
        "KONG_PROXY_SSL_VERIFY_DEPTH": "2",
        "KONG_UPSTREAM_KEEPALIVE_POOL_SIZE": "0",
    }
    with running_gateway(tmp_path / "gw", env) as gw:
        kong = KongClient(gw)
        try:
            _service(kong, "globals", f"https://localhost:{upstreams.ports['deep']}/")
            status, cert, trust = _traced(kong, "globals")
            assert status == 200
            assert cert == {
                "from": "global setting client_ssl_cert",
                "certificate": "none",
                "subject": "CN=example.com",
            }
            assert (trust["verify"], trust["verify_from"]) == ("on", "global setting proxy_ssl_verify")
            assert trust["trust"] == "proxy_ssl_trusted_certificate"
            assert trust["trust_from"] == "global setting proxy_ssl_trusted_certificate"
            assert (trust["depth"], trust["depth_from"]) == ("2", "global setting proxy_ssl_verify_depth")
            assert (trust["result"], trust["connection"], trust["resumed"]) == ("ok", "new", "no")
            status, _, again = _traced(kong, "globals")
            assert (status, again["connection"], again["resumed"]) == (200, "new", "yes")
        finally:
            kong.close()
