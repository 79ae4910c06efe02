"""``gateway doctor service NAME`` against a real running gateway and real nginx TLS upstreams.

One gateway for the module, started with global upstream TLS settings (``proxy_ssl_verify = on``, the testing root
as ``proxy_ssl_trusted_certificate``, ``client_ssl = on`` with a client certificate), so each service can take a
value from itself, from its Upstream entity or from the globals. The doctor runs as a separate process with the
gateway's own environment (its ``KONG_*``), so it finds the Admin API from ``admin_listen`` as a user's shell would.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fixtures.gateway_process import GatewayProcess, run_cli, running_gateway
from tests.fixtures.nginx import NginxRunner
from tests.fixtures.ports import closed_port
from tests.integration.tls.upstream.kong import KongClient
from tests.integration.tls.upstream.pki import Pki
from tests.integration.tls.upstream.upstreams import Upstreams, start_upstreams

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki.build()


@pytest.fixture(scope="module")
def upstreams(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstreams]:
    runner = NginxRunner(tmp_path_factory.mktemp("doctor-service-upstreams"))
    try:
        yield start_upstreams(runner, pki)
    finally:
        runner.stop_all()


@pytest.fixture(scope="module")
def kong(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KongClient]:
    d = tmp_path_factory.mktemp("doctor-service-gw")
    (d / "root.pem").write_text(pki.root.cert_pem)
    (d / "global-client.pem").write_text(pki.client_two.chain_pem)
    (d / "global-client.key").write_text(pki.client_two.key_pem)
    env = {
        "KONG_LOG_LEVEL": "debug",
        "KONG_PROXY_SSL_VERIFY": "on",
        "KONG_PROXY_SSL_TRUSTED_CERTIFICATE": str(d / "root.pem"),
        "KONG_CLIENT_SSL": "on",
        "KONG_CLIENT_SSL_CERT": str(d / "global-client.pem"),
        "KONG_CLIENT_SSL_CERT_KEY": str(d / "global-client.key"),
    }
    with running_gateway(d, env) as gw:
        client = KongClient(gw)
        try:
            yield client
        finally:
            client.close()


def doctor(gw: GatewayProcess, *args: str) -> subprocess.CompletedProcess[str]:
    """``gateway doctor service`` with the gateway's own environment (no --admin: found from admin_listen)."""
    return run_cli("doctor", "service", *args, env=gw.env)


def doctor_json(gw: GatewayProcess, *args: str) -> tuple[int, dict[str, Any]]:
    out = doctor(gw, *args, "--json")
    document: dict[str, Any] = json.loads(out.stdout)
    assert document["exit"] == out.returncode
    return out.returncode, document


def found(document: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [f for f in document["findings"] if f["kind"] == kind]


def values(document: dict[str, Any]) -> dict[str, str]:
    """``{"tls_verify": "tls_verify: on, from service: ..."}``: each profile value's sentence."""
    return {f["facts"]["value"]: f["message"] for f in found(document, "profile_value")}


def service(kong: KongClient, name: str, url: str, **fields: Any) -> dict[str, Any]:
    svc = kong.post("/services", {"name": name, "url": url, "retries": 0, **fields})
    kong.post("/routes", {"hosts": [f"{name}.test"], "service": {"id": svc["id"]}})
    return svc


def test_verify_trust_and_client_certificate_from_the_globals(kong: KongClient, upstreams: Upstreams) -> None:
    service(kong, "globals", f"https://localhost:{upstreams.ports['mtls']}/")
    out = doctor(kong.gw, "globals")
    assert out.returncode == 1, out.stdout  # CN=example.com does not cover localhost: the host check refuses
    lines = out.stdout.splitlines()
    assert (
        "ok       tls_verify: on, from global setting proxy_ssl_verify (kong.conf or KONG_PROXY_SSL_VERIFY)." in lines
    )
    assert (
        "ok       trust store: proxy_ssl_trusted_certificate, from global setting proxy_ssl_trusted_certificate "
        "(kong.conf or KONG_PROXY_SSL_TRUSTED_CERTIFICATE)." in lines
    )
    assert (
        "ok       verify depth: 1, from default: Kong's default (nothing set on the service or in kong.conf)." in lines
    )
    assert (
        "ok       client certificate: CN=example2.com, from global setting client_ssl_cert (kong.conf or "
        "KONG_CLIENT_SSL_CERT)." in lines
    )
    [refused] = [line for line in lines if line.startswith("problem  the gateway refuses")]
    assert 'upstream SSL certificate does not match "localhost" while SSL handshaking to upstream' in refused

    # the name example.com as SNI and checked name, without resolving it: an Upstream entity's host_header
    up = kong.post("/upstreams", {"name": "mtls-up", "host_header": "example.com"})
    kong.post(f"/upstreams/{up['id']}/targets", {"target": f"127.0.0.1:{upstreams.ports['mtls']}"})
    kong.patch("/services/globals", {"host": "mtls-up"})
    code, document = doctor_json(kong.gw, "globals")
    assert code == 0, document
    assert "connecting to its target 127.0.0.1:" in found(document, "upstream_target")[0]["message"]
    assert "with the name example.com (its host_header)" in found(document, "upstream_target")[0]["message"]
    assert found(document, "upstream_answer")[0]["message"].endswith("answered HTTP/1.1 200 OK.")
    assert kong.get("globals.test").headers["x-client-dn"] == "CN=example2.com"


def test_client_certificate_from_the_upstream_entity_then_the_service(
    kong: KongClient, upstreams: Upstreams, pki: Pki
) -> None:
    cert_up = kong.post("/certificates", {"cert": pki.client_one.chain_pem, "key": pki.client_one.key_pem})
    up = kong.post("/upstreams", {"name": "mtls-own", "host_header": "example.com", "client_certificate": cert_up})
    kong.post(f"/upstreams/{up['id']}/targets", {"target": f"127.0.0.1:{upstreams.ports['mtls']}"})
    service(kong, "levels", "https://mtls-own:443/")
    code, document = doctor_json(kong.gw, "levels")
    assert code == 0, document
    assert values(document)["client certificate"] == (
        f"client certificate: CN=example.com (certificate {cert_up['id']}), from upstream: the Upstream entity named "
        "like the service's host (its client_certificate)."
    )
    assert not found(document, "profile_differs")

    cert_svc = kong.post("/certificates", {"cert": pki.client_two.chain_pem, "key": pki.client_two.key_pem})
    kong.patch("/services/levels", {"client_certificate": {"id": cert_svc["id"]}})
    code, document = doctor_json(kong.gw, "levels")
    assert code == 0, document
    assert values(document)["client certificate"].startswith(
        f"client certificate: CN=example2.com (certificate {cert_svc['id']}), from service: the service's own "
        "client_certificate."
    )
    assert kong.get("levels.test").headers["x-client-dn"] == "CN=example2.com"


def test_an_untrusted_ca_prints_the_line_the_gateway_logs(kong: KongClient, upstreams: Upstreams, pki: Pki) -> None:
    port = upstreams.ports["tls"]
    ca = kong.post("/ca_certificates", {"cert": pki.other_ca.cert_pem})
    service(kong, "untrusted", f"https://127.0.0.1:{port}/", tls_verify=True, ca_certificates=[ca["id"]])
    out = doctor(kong.gw, "untrusted")
    assert out.returncode == 1, out.stdout
    lines = out.stdout.splitlines()
    assert "ok       tls_verify: on, from service: the service's own tls_verify." in lines
    assert (
        f"ok       trust store: ca_certificates:{ca['id']}, from service: the service's own ca_certificates." in lines
    )
    assert "verify step, depth 1: CN=Kong Testing Intermediate CA (sent by the server): 20:unable to get local" in (
        out.stdout
    )
    [refused] = [line for line in lines if line.startswith("problem  the gateway refuses")]
    printed = refused.split("Kong's error.log: [error] ", 1)[1].split(" Fix: ", 1)[0]
    assert printed.startswith("upstream SSL certificate verify error: (20:unable to get local issuer certificate)")
    assert "holds no CA that issued CN=Kong Testing Intermediate CA" in refused

    mark = kong.mark()
    assert kong.get("untrusted.test").status_code == 502
    [logged] = [line for line in kong.lines_since(mark) if "while SSL handshaking to upstream" in line]
    reason, upstream = printed.split(" while SSL handshaking to upstream, ")
    assert " [error] " in logged  # the level the doctor printed
    assert f"{reason} while SSL handshaking to upstream, client: 127.0.0.1" in logged
    assert upstream == f'upstream: "https://127.0.0.1:{port}/"' and upstream in logged


def test_a_depth_too_small_is_22_then_the_service_depth_passes(kong: KongClient, upstreams: Upstreams) -> None:
    service(kong, "deep", f"https://localhost:{upstreams.ports['deep']}/")
    code, document = doctor_json(kong.gw, "deep")
    assert code == 1
    [verdict] = found(document, "upstream_refused")
    assert verdict["facts"]["code"] == 22 and verdict["facts"]["needed"] == 2
    assert "Set tls_verify_depth = 2 on the service" in verdict["fix"]
    assert kong.get("deep.test").status_code == 502

    kong.patch("/services/deep", {"tls_verify_depth": 2})
    code, document = doctor_json(kong.gw, "deep")
    assert code == 0, document
    assert values(document)["verify depth"] == "verify depth: 2, from service: the service's own tls_verify_depth."
    assert found(document, "upstream_ok")
    assert kong.get("deep.test").status_code == 200


def test_verify_off_on_the_service_wins_over_the_global(kong: KongClient, upstreams: Upstreams) -> None:
    service(kong, "lax", f"https://localhost:{upstreams.ports['self_signed']}/", tls_verify=False)
    code, document = doctor_json(kong.gw, "lax")
    assert code == 0, document
    assert values(document)["tls_verify"] == "tls_verify: off, from service: the service's own tls_verify."
    [off] = found(document, "verify_off")
    assert off["severity"] == "warning"
    assert "with tls_verify on it would fail: 18:self-signed certificate" in off["message"]
    assert kong.get("lax.test").status_code == 200

    # by IP: the name checked would be 127.0.0.1, which CN=localhost does not cover; with verification off the
    # gateway does not check it, so the mismatch is a warning, not a problem
    service(kong, "lax-ip", f"https://127.0.0.1:{upstreams.ports['tls']}/", tls_verify=False)
    code, document = doctor_json(kong.gw, "lax-ip")
    assert code == 0, document
    assert found(document, "name_mismatch")[0]["severity"] == "warning"
    assert "the chain verifies but the host check would fail" in found(document, "verify_off")[0]["message"]
    assert kong.get("lax-ip.test").status_code == 200


def test_settings_other_than_the_gateways_are_said(kong: KongClient, upstreams: Upstreams) -> None:
    service(kong, "elsewhere", f"https://localhost:{upstreams.ports['tls']}/")
    env = {k: v for k, v in kong.gw.env.items() if k != "KONG_PROXY_SSL_VERIFY"}
    out = run_cli("doctor", "service", "elsewhere", "--json", env=env)
    document = json.loads(out.stdout)
    assert out.returncode == 1
    fields = {f["facts"]["field"] for f in found(document, "profile_differs")}
    assert fields == {"tls_verify", "tls_verify origin"}


def test_unknown_service_and_unreachable_admin(kong: KongClient) -> None:
    out = doctor(kong.gw, "nope")
    assert out.returncode == 1
    assert f"the gateway at {kong.gw.admin_url} has no service with the id or name 'nope'" in out.stdout
    url = f"http://127.0.0.1:{closed_port()}"
    out = doctor(kong.gw, "nope", "--admin", url)
    assert out.returncode == 1
    assert f"problem  cannot reach the Admin API at {url} (" in out.stdout
    plain = kong.post("/services", {"name": "plain", "url": "http://127.0.0.1:9/"})
    code, document = doctor_json(kong.gw, plain["id"])
    assert code == 0
    assert found(document, "not_tls")[0]["message"].startswith("service plain speaks http to its upstream")


def test_a_stream_tls_service_gets_the_handshake_without_an_http_request(
    kong: KongClient, upstreams: Upstreams
) -> None:
    kong.post("/services", {"name": "stream", "protocol": "tls", "host": "localhost", "port": upstreams.ports["tls"]})
    code, document = doctor_json(kong.gw, "stream")
    assert code == 0, document
    assert found(document, "upstream_ok")
    assert not found(document, "upstream_answer") and not found(document, "upstream_no_answer")
    assert document["findings"][0]["message"].startswith(f"service stream (tls://localhost:{upstreams.ports['tls']})")
