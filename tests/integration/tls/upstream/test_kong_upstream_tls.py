"""Kong's ``18-upstream_tls_spec.lua`` (reference 8.A, cases 1-17) against the real gateway process and nginx.

The mocks are Kong's: an mTLS upstream (``ssl_verify_client on`` against the testing root) and a plain TLS
upstream, both presenting leaf + intermediate with CN-only certificates. Kong resolves ``example.com`` through a
DNS mock; here the TLS service is ``https://localhost:<port>`` and its certificate's CN is ``localhost``.
Every change goes through the Admin API while the gateway runs, and each step waits until the configuration
that includes it is live. Beyond Kong's cases: the error-log lines verbatim, ``X-Gateway-TLS-Error``, a CA
edited in place while an idle pooled connection exists, and the verification codes 18/10/21/22 and the host
check.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.certs import Issued
from tests.fixtures.gateway_process import running_gateway
from tests.integration.tls.upstream.kong import LINE_PREFIX, KongClient, tls_line
from tests.integration.tls.upstream.pki import Pki
from tests.integration.tls.upstream.upstreams import Upstreams

pytestmark = pytest.mark.timeout(60)

INVALID = "An invalid response was received from the upstream server"
NO_CERT = "400 No required SSL certificate was sent"


@pytest.fixture(scope="module")
def kong(tmp_path_factory: pytest.TempPathFactory, upstreams: Upstreams) -> Iterator[KongClient]:
    env = {"KONG_LOG_LEVEL": "debug", "KONG_DEBUG_TLS_ERRORS": "on"}
    with running_gateway(tmp_path_factory.mktemp("kong"), env) as gw:
        client = KongClient(gw)
        try:
            yield client
        finally:
            client.close()


def _certificate(kong: KongClient, issued: Issued) -> str:
    return str(kong.post("/certificates", {"cert": issued.chain_pem, "key": issued.key_pem})["id"])


def _service(kong: KongClient, name: str, url: str, host: str, **fields: object) -> str:
    svc = kong.post("/services", {"name": name, "url": url, **fields})
    kong.post("/routes", {"name": f"{name}-route", "hosts": [host], "service": {"id": svc["id"]}})
    return str(svc["id"])


def _root_ca_id(kong: KongClient, pki: Pki) -> str:
    """The ``ca_certificates`` entity of the testing root (created on first use; digests are unique)."""
    for ca in kong.admin.get("/ca_certificates").json()["data"]:
        if ca["cert"] == pki.root.cert_pem:
            return str(ca["id"])
    return str(kong.post("/ca_certificates", {"cert": pki.root.cert_pem})["id"])


def _matches(lines: list[str], pattern: str) -> list[str]:
    return [line for line in lines if re.match(pattern, line)]


# --------------------------------------------------------------------------------------------- cases 1-4


def test_service_client_certificate_cases_1_to_4(kong: KongClient, pki: Pki, upstreams: Upstreams) -> None:
    port = upstreams.ports["mtls"]
    _service(kong, "mtls", f"https://127.0.0.1:{port}/", "mtls.test")

    # 1. no client certificate: the upstream refuses the request itself
    res = kong.get("mtls.test")
    assert res.status_code == 400
    assert NO_CERT in res.text

    # 2. the service's client certificate (same CA as the upstream trusts)
    cert_id = _certificate(kong, pki.client_one)
    kong.patch("/services/mtls", {"client_certificate": {"id": cert_id}})
    res = kong.get("mtls.test")
    assert res.status_code == 200
    assert res.text == "it works"
    first_dn = res.headers["x-client-dn"]
    assert first_dn == "CN=example.com"

    # 3. the certificate entity is replaced in place: the next connection presents the new one
    kong.patch(f"/certificates/{cert_id}", {"cert": pki.client_two.chain_pem, "key": pki.client_two.key_pem})
    res = kong.get("mtls.test")
    assert res.status_code == 200
    assert res.headers["x-client-dn"] == "CN=example2.com"
    assert res.headers["x-client-fp"] != ""

    # 4. removing it from the service: no certificate again
    kong.patch("/services/mtls", {"client_certificate": None})
    res = kong.get("mtls.test")
    assert res.status_code == 400
    assert NO_CERT in res.text


# --------------------------------------------------------------------------------------------- cases 5-8


def test_upstream_entity_client_certificate_cases_5_to_8(kong: KongClient, pki: Pki, upstreams: Upstreams) -> None:
    port = upstreams.ports["mtls"]
    kong.post("/upstreams", {"name": "backend-mtls"})
    kong.post("/upstreams/backend-mtls/targets", {"target": f"127.0.0.1:{port}"})
    _service(kong, "mtls-upstream", "https://backend-mtls/", "mtls-upstream.test")

    # 5. no certificate anywhere
    res = kong.get("mtls-upstream.test")
    assert res.status_code == 400
    assert NO_CERT in res.text

    # 6. the Upstream entity's certificate is the fallback
    good = _certificate(kong, pki.client_one)
    kong.patch("/upstreams/backend-mtls", {"client_certificate": {"id": good}})
    res = kong.get("mtls-upstream.test")
    assert res.status_code == 200
    assert res.text == "it works"
    assert res.headers["x-client-dn"] == "CN=example.com"

    # 7. and removing it goes back to none
    kong.patch("/upstreams/backend-mtls", {"client_certificate": None})
    res = kong.get("mtls-upstream.test")
    assert res.status_code == 400

    # 8. an untrusted certificate on the Upstream, a trusted one on the Service: the Service's wins
    bad = _certificate(kong, pki.client_untrusted)
    kong.patch("/upstreams/backend-mtls", {"client_certificate": {"id": bad}})
    kong.patch("/services/mtls-upstream", {"client_certificate": {"id": good}})
    res = kong.get("mtls-upstream.test")
    assert res.status_code == 200
    assert res.headers["x-client-dn"] == "CN=example.com"


# --------------------------------------------------------------------------------------------- cases 9-13


def test_tls_verify_and_ca_certificates_cases_9_to_13(kong: KongClient, pki: Pki, upstreams: Upstreams) -> None:
    port = upstreams.ports["tls"]
    _service(kong, "tls", f"https://localhost:{port}/", "tls.test")

    # 9. verification is off by default: an untrusted chain is fine
    res = kong.get("tls.test")
    assert res.status_code == 200
    assert res.text == "it works"
    assert res.headers["x-sni"] == "localhost"

    # 10. tls_verify=true and no CA: the store is empty, so 20, after retries + 1 tries
    mark = kong.mark()
    kong.patch("/services/tls", {"tls_verify": True})
    res = kong.get("tls.test")
    assert res.status_code == 502
    assert res.json()["message"] == INVALID
    reason = "upstream SSL certificate verify error: (20:unable to get local issuer certificate)"
    assert res.headers["x-gateway-tls-error"] == reason
    rid = res.headers["x-kong-request-id"]
    assert len(_matches(kong.lines_since(mark), tls_line(reason, port, "tls.test", rid))) == 6  # retries 5

    # 11. the root as the service's CA: verified, and the CN matches the upstream host
    ca = kong.post("/ca_certificates", {"cert": pki.root.cert_pem})
    kong.patch("/services/tls", {"ca_certificates": [ca["id"]]})
    res = kong.get("tls.test")
    assert res.status_code == 200
    assert res.headers["x-sni"] == "localhost"
    pooled_conn = res.headers["x-conn"]
    assert kong.get("tls.test").headers["x-conn"] == pooled_conn  # an idle pooled connection exists

    # 12. the CA entity's PEM is replaced by an unrelated CA: the idle connection is not reused, 502
    mark = kong.mark()
    kong.patch(f"/ca_certificates/{ca['id']}", {"cert": pki.other_ca.cert_pem})
    res = kong.get("tls.test")
    assert res.status_code == 502
    assert res.headers["x-gateway-tls-error"] == reason
    lines = kong.lines_since(mark)
    assert _matches(lines, tls_line(reason, port, "tls.test", res.headers["x-kong-request-id"]))
    assert not [line for line in lines if "keepalive reusing connection" in line]

    # 13. back to the right root: 200 again; the content is the original one, so is the pool key, and the
    # connection verified under it is reused
    kong.patch(f"/ca_certificates/{ca['id']}", {"cert": pki.root.cert_pem})
    res = kong.get("tls.test")
    assert res.status_code == 200
    assert res.headers["x-conn"] == pooled_conn


# --------------------------------------------------------------------------------------------- cases 14-15


def test_tls_verify_depth_cases_14_and_15(kong: KongClient, pki: Pki, upstreams: Upstreams) -> None:
    port = upstreams.ports["tls"]
    root_id = _root_ca_id(kong, pki)
    _service(kong, "depth", f"https://localhost:{port}/", "depth.test", tls_verify=True, ca_certificates=[root_id])

    # 14. depth 0 with one intermediate in the chain: too long
    mark = kong.mark()
    kong.patch("/services/depth", {"tls_verify_depth": 0})
    res = kong.get("depth.test")
    assert res.status_code == 502
    reason = "upstream SSL certificate verify error: (22:certificate chain too long)"
    assert res.headers["x-gateway-tls-error"] == reason
    assert _matches(kong.lines_since(mark), tls_line(reason, port, "depth.test", res.headers["x-kong-request-id"]))

    # 15. depth 1: fine
    kong.patch("/services/depth", {"tls_verify_depth": 1})
    assert kong.get("depth.test").status_code == 200


# --------------------------------------------------------------------------------------------- more codes


@pytest.mark.parametrize(
    ("server", "depth", "reason"),
    [
        ("deep", 2, None),
        ("deep", 1, "upstream SSL certificate verify error: (22:certificate chain too long)"),
        ("deep_leaf_only", 1, "upstream SSL certificate verify error: (21:unable to verify the first certificate)"),
        ("leaf_only", 1, "upstream SSL certificate verify error: (21:unable to verify the first certificate)"),
        ("self_signed", 1, "upstream SSL certificate verify error: (18:self-signed certificate)"),
        ("expired", 1, "upstream SSL certificate verify error: (10:certificate has expired)"),
    ],
)
def test_verification_codes_as_nginx_logs_them(
    kong: KongClient, upstreams: Upstreams, pki: Pki, server: str, depth: int, reason: str | None
) -> None:
    """Two intermediates pass at depth 2 and fail at depth 1 with 22 (21 when only the leaf is sent)."""
    port = upstreams.ports[server]
    root_id = _root_ca_id(kong, pki)
    name = f"codes-{server}-{depth}"
    host = f"{name}.test"
    _service(
        kong,
        name,
        f"https://localhost:{port}/",
        host,
        tls_verify=True,
        tls_verify_depth=depth,
        ca_certificates=[root_id],
        retries=0,
    )
    mark = kong.mark()
    res = kong.get(host)
    if reason is None:
        assert res.status_code == 200
        return
    assert res.status_code == 502
    assert res.headers["x-gateway-tls-error"] == reason
    lines = _matches(kong.lines_since(mark), tls_line(reason, port, host, res.headers["x-kong-request-id"]))
    assert len(lines) == 1  # retries = 0: one try


def test_host_check_uses_the_upstream_host(kong: KongClient, upstreams: Upstreams, pki: Pki) -> None:
    """The certificate says ``example.com``; the upstream host is ``localhost``: nginx's "does not match"."""
    port = upstreams.ports["mtls"]  # serves CN=example.com
    root_id = _root_ca_id(kong, pki)
    _service(
        kong, "mismatch", f"https://localhost:{port}/", "mismatch.test", tls_verify=True, ca_certificates=[root_id]
    )
    mark = kong.mark()
    res = kong.get("mismatch.test")
    assert res.status_code == 502
    reason = 'upstream SSL certificate does not match "localhost"'
    assert res.headers["x-gateway-tls-error"] == reason
    assert _matches(kong.lines_since(mark), tls_line(reason, port, "mismatch.test", res.headers["x-kong-request-id"]))


def test_missing_ca_logs_crit_and_leaves_the_store_alone(kong: KongClient, upstreams: Upstreams) -> None:
    """A ``ca_certificates`` id that does not exist (not foreign-key checked): Kong's CRIT line, and the global
    store (empty here) stays in place, so verification still fails closed."""
    port = upstreams.ports["tls"]
    missing = "00000000-0000-4000-8000-000000000042"
    _service(
        kong, "missing-ca", f"https://localhost:{port}/", "missing-ca.test", tls_verify=True, ca_certificates=[missing]
    )
    mark = kong.mark()
    res = kong.get("missing-ca.test")
    assert res.status_code == 502
    rid = res.headers["x-kong-request-id"]
    crit = (
        "^"
        + LINE_PREFIX % "crit"
        + re.escape(f"unable to get upstream TLS CA store, err: CA Certificate '{missing}' does not exist")
        + re.escape(', client: 127.0.0.1, server: kong, request: "GET / HTTP/1.1", host: "missing-ca.test", ')
        + f'request_id: "{rid}"$'
    )
    lines = kong.lines_since(mark)
    assert len(_matches(lines, crit)) == 1
    reason = "upstream SSL certificate verify error: (20:unable to get local issuer certificate)"
    assert _matches(lines, tls_line(reason, port, "missing-ca.test", rid))


# --------------------------------------------------------------------------------------------- cases 16-17


def test_global_verify_cases_16_and_17(tmp_path: Path, pki: Pki, upstreams: Upstreams) -> None:
    """Kong started with the injected ``nginx_proxy_proxy_ssl_verify=on`` and an unrelated trusted certificate."""
    trusted = tmp_path / "unrelated.pem"
    trusted.write_text(pki.other_ca.cert_pem)
    env = {
        "KONG_LOG_LEVEL": "debug",
        "KONG_NGINX_PROXY_PROXY_SSL_VERIFY": "on",
        "KONG_NGINX_PROXY_PROXY_SSL_TRUSTED_CERTIFICATE": str(trusted),
    }
    port = upstreams.ports["tls"]
    with running_gateway(tmp_path, env) as gw:
        kong = KongClient(gw)
        try:
            _service(kong, "tls", f"https://localhost:{port}/", "tls.test")
            # 16. tls_verify unset: the global verification applies, against the unrelated store
            res = kong.get("tls.test")
            assert res.status_code == 502
            assert "x-gateway-tls-error" not in res.headers  # debug_tls_errors is off by default
            reason = "upstream SSL certificate verify error: (20:unable to get local issuer certificate)"
            assert _matches(kong.error_lines(), tls_line(reason, port, "tls.test", res.headers["x-kong-request-id"]))

            # the service's own CA set replaces the global store
            ca = kong.post("/ca_certificates", {"cert": pki.root.cert_pem})
            kong.patch("/services/tls", {"ca_certificates": [ca["id"]]})
            assert kong.get("tls.test").status_code == 200

            # 17. tls_verify=false overrides the global on (an untrusted chain passes)
            kong.patch("/services/tls", {"ca_certificates": None, "tls_verify": False})
            res = kong.get("tls.test")
            assert res.status_code == 200
            assert res.text == "it works"
        finally:
            kong.close()
