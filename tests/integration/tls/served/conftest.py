"""Fixtures for downstream TLS end to end: a PKI, an nginx upstream, and the real ``gateway`` with an ssl listener.

The PKI mirrors Kong's ``spec.fixtures.ssl`` subjects (``ssl-example.com``, ``ssl-alt.com``, ``ssl-alt-alt.com``) but
issues them through intermediates - a separate RSA and ECDSA intermediate under one root - so that every test can
also check the chain sent: leaf + its own intermediate, never the root.
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.fixtures.admin_client import Admin
from tests.fixtures.certs import Issued, make_ca, make_cert
from tests.fixtures.gateway_process import GatewayProcess, make_gateway
from tests.fixtures.nginx import NginxRunner, NginxServer
from tests.integration.tls.served.clients import s_client, wait_until

UPSTREAM = """
server {
    listen 127.0.0.1:{port};
    location / {
        return 200 "ok uri=$request_uri host=$host xfp=$http_x_forwarded_proto\\n";
    }
}
"""

EXAMPLE_SANS = ["example.com", "ssl1.com", "sni.example.com", "global.com"]


@dataclass
class Pki:
    """The certificates of the reference setup (section 8.B), plus the root file curl trusts."""

    root: Issued
    inter_rsa: Issued
    inter_ec: Issued
    example_rsa: Issued
    example_ec: Issued
    alt: Issued
    alt_alt_rsa: Issued
    alt_alt_ec: Issued
    root_file: str


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = make_ca("Kong Testing Root CA")
    inter_rsa = make_ca("Kong Testing RSA Intermediate", issuer=root)
    inter_ec = make_ca("Kong Testing ECDSA Intermediate", issuer=root, key_type="ec")
    directory = tmp_path_factory.mktemp("pki")
    root_file = directory / "root.pem"
    root_file.write_text(root.cert_pem)
    return Pki(
        root=root,
        inter_rsa=inter_rsa,
        inter_ec=inter_ec,
        example_rsa=make_cert("ssl-example.com", inter_rsa, sans=EXAMPLE_SANS),
        example_ec=make_cert("ssl-example.com", inter_ec, key_type="ec", sans=EXAMPLE_SANS),
        alt=make_cert("ssl-alt.com", inter_rsa, sans=["*.wildcard.com", "wildcard.eu"]),
        alt_alt_rsa=make_cert("ssl-alt-alt.com", inter_rsa, sans=["wildcard.org"]),
        alt_alt_ec=make_cert("ssl-alt-alt.com", inter_ec, key_type="ec", sans=["wildcard.org"]),
        root_file=str(root_file),
    )


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NginxServer]:
    runner = NginxRunner(tmp_path_factory.mktemp("upstream"))
    try:
        yield runner.start(UPSTREAM)
    finally:
        runner.stop_all()


def start_ssl_gateway(tmp_path: pathlib.Path, extra_env: dict[str, str] | None = None) -> GatewayProcess:
    """A started gateway with a plain and an ``ssl`` proxy listener (stop it with ``.stop()``)."""
    return make_gateway(tmp_path, extra_env, ssl=True).start()


def certificate_body(leaf: Issued, alt: Issued | None = None, snis: list[str] | None = None) -> dict[str, Any]:
    """A ``POST /certificates`` body: the leaf's chain (leaf + intermediates) and key, optional alt pair."""
    body: dict[str, Any] = {"cert": leaf.chain_pem, "key": leaf.key_pem}
    if alt is not None:
        body.update(cert_alt=alt.chain_pem, key_alt=alt.key_pem)
    if snis is not None:
        body["snis"] = snis
    return body


@dataclass
class ReferenceGateway:
    """The gateway configured as Kong's ``06-ssl_spec.lua`` "SSL" block (section 8.B setup)."""

    gw: GatewayProcess
    admin: Admin
    upstream: NginxServer
    certificates: dict[str, str]

    @property
    def ssl_port(self) -> int:
        assert self.gw.proxy_ssl_port is not None
        return self.gw.proxy_ssl_port


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, pki: Pki, upstream: NginxServer) -> Iterator[ReferenceGateway]:
    gw = start_ssl_gateway(
        tmp_path_factory.mktemp("reference"), {"KONG_TRUSTED_IPS": "127.0.0.1", "KONG_LOG_LEVEL": "debug"}
    )
    admin = Admin(gw)
    ssl_port = gw.proxy_ssl_port
    assert ssl_port is not None
    try:
        up = f"http://127.0.0.1:{upstream.port}"
        admin.post("/services", {"name": "global-cert", "url": up})
        admin.post("/services/global-cert/routes", {"protocols": ["https"], "hosts": ["global.com"]})
        admin.post("/services", {"name": "api-1", "url": up})
        admin.post("/services/api-1/routes", {"protocols": ["https"], "hosts": ["example.com", "ssl1.com"]})
        admin.post(
            "/services/api-1/routes",
            {"protocols": ["https"], "hosts": ["sni.example.com"], "snis": ["sni.example.com"]},
        )
        for code in (301, 302):
            admin.post(
                "/services/api-1/routes",
                {
                    "protocols": ["https"],
                    "hosts": ["example.com"],
                    "paths": [f"/redirect-{code}"],
                    "https_redirect_status_code": code,
                    "strip_path": False,
                },
            )
        # routes matched by SNI only (cases 38/39 on the HTTPS listener, and the wildcard rules of 1.5)
        admin.post("/services", {"name": "by-sni", "url": f"{up}/sni-routed"})
        for path, snis in (
            ("/sni", ["example.com"]),
            ("/fqdn", ["foobar.example.com."]),
            ("/wild", ["*.foo.test", "bar.*"]),
        ):
            admin.post("/services/by-sni/routes", {"protocols": ["https"], "paths": [path], "snis": snis})

        certificates = {
            "ssl-example.com": admin.post(
                "/certificates", certificate_body(pki.example_rsa, pki.example_ec, ["example.com", "ssl1.com"])
            )["id"],
            "ssl-alt.com": admin.post(
                "/certificates", certificate_body(pki.alt, None, ["*.wildcard.com", "wildcard.*"])
            )["id"],
            "ssl-alt-alt.com": admin.post(
                "/certificates",
                certificate_body(
                    pki.alt_alt_rsa, pki.alt_alt_ec, ["wildcard.org", "test.wildcard.*", "*.www.wildcard.com"]
                ),
            )["id"],
        }
        # the snapshot is rebuilt after each commit: wait until the last write is served
        served = wait_until(
            lambda: s_client(ssl_port, "test.www.wildcard.com"), lambda h: h.subjects[:1] == ["ssl-alt-alt.com"]
        )
        assert served.subjects[:1] == ["ssl-alt-alt.com"], served.output
        yield ReferenceGateway(gw, admin, upstream, certificates)
    finally:
        admin.close()
        assert gw.stop() == 0
