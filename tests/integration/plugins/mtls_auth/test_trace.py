"""Layer 2's record (``X-Gateway-TLS-Client-Auth``) against the real gateway, with curl and ``openssl s_client``:
why a certificate was requested and with which CA names, then what mtls-auth made of what was presented
(verify codes and depth, the anchoring CA, the consumer and by which field, anonymous, plain HTTP)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.fixtures.admin_client import Admin
from tests.fixtures.gateway_process import GatewayProcess
from tests.fixtures.nginx import NginxServer
from tests.integration.plugins.mtls_auth.conftest import ClientPki, curl, s_client_request, start_gateway, wait_until
from tests.integration.tls.served.trace_clients import parse_record

pytestmark = pytest.mark.timeout(90)

DEBUG = ("Kong-Debug: 1",)
HEADER = "x-gateway-tls-client-auth"
FAILED = "401 TLS certificate failed verification"


@dataclass
class Setup:
    gw: GatewayProcess
    port: int
    ca_a: str


@pytest.fixture(scope="module")
def setup(
    tmp_path_factory: pytest.TempPathFactory, echo_upstream: NginxServer, client_pki: ClientPki
) -> Iterator[Setup]:
    gw = start_gateway(tmp_path_factory.mktemp("trace-gw"), {"KONG_ALLOW_DEBUG_HEADER": "on"})
    admin = Admin(gw)
    try:
        ca_a = str(admin.post("/ca_certificates", {"cert": client_pki.root_a.cert_pem})["id"])
        admin.post("/services", {"name": "echo", "url": f"http://127.0.0.1:{echo_upstream.port}"})
        admin.post("/consumers", {"username": "client-a"})
        admin.post("/consumers", {"username": "bob-the-consumer"})
        admin.post("/consumers", {"custom_id": "carol-42"})
        admin.post("/consumers", {"username": "anonymous-user"})
        admin.post(
            "/consumers/bob-the-consumer/mtls-auth", {"subject_name": "bob.example.com", "ca_certificate": {"id": ca_a}}
        )
        admin.post("/services/echo/routes", {"name": "mtls", "paths": ["/mtls"]})
        admin.post("/routes/mtls/plugins", {"name": "mtls-auth", "config": {"ca_certificates": [ca_a]}})
        admin.post("/services/echo/routes", {"name": "anon", "paths": ["/anon"]})
        admin.post(
            "/routes/anon/plugins",
            {"name": "mtls-auth", "config": {"ca_certificates": [ca_a], "anonymous": "anonymous-user"}},
        )
        admin.post("/services/echo/routes", {"name": "plain", "paths": ["/plain"]})
        admin.post(
            "/services/echo/routes", {"name": "sni", "paths": ["/sni"], "snis": ["a.mtls.test"], "protocols": ["https"]}
        )
        admin.post(
            "/routes/sni/plugins", {"name": "mtls-auth", "config": {"ca_certificates": [ca_a], "send_ca_dn": True}}
        )
        port = gw.proxy_ssl_port
        assert port is not None
        alice = client_pki.alice
        ready = wait_until(
            lambda: curl(port, "/sni", cert=alice.chain, key=alice.key, sni="a.mtls.test"), lambda r: r.status == 200
        )
        assert ready.status == 200, ready
        yield Setup(gw, port, ca_a)
    finally:
        admin.close()
        assert gw.stop() == 0


@pytest.mark.parametrize(
    ("who", "consumer", "matched_by"),
    [("alice", "client-a", "username"), ("bob", "bob-the-consumer", "credential"), ("carol", None, "custom_id")],
)
def test_authenticated_with_the_field_that_matched(
    setup: Setup, client_pki: ClientPki, who: str, consumer: str | None, matched_by: str
) -> None:
    client = getattr(client_pki, who)
    reply = curl(setup.port, "/mtls", cert=client.chain, key=client.key, headers=DEBUG)
    assert reply.status == 200
    record = parse_record(reply.headers[HEADER])
    assert (record["requested"], record["requested_by"], record["ca_dns"]) == ("yes", "*", "none")
    assert (record["presented"], record["chain"], record["verify"]) == ("yes", "2", "ok")
    assert record["subject"].startswith("CN=")
    assert record["anchor"] == setup.ca_a
    assert record["revocation"] == "unknown"  # IGNORE_CA_ERROR: no OCSP/CRL URL in these certificates, not fatal
    if consumer is not None:
        assert record["consumer"] == consumer
    assert (record["matched_by"], record["result"]) == (matched_by, "authenticated")


@pytest.mark.parametrize(
    ("who", "leaf_only", "verify", "depth"),
    [
        ("alice", True, "21:unable to verify the first certificate", "0"),
        ("other", False, "20:unable to get local issuer certificate", "1"),
        ("expired", False, "10:certificate has expired", "0"),
    ],
)
def test_verification_failures_with_code_and_depth(
    setup: Setup, client_pki: ClientPki, who: str, leaf_only: bool, verify: str, depth: str
) -> None:
    client = getattr(client_pki, who)
    reply = curl(setup.port, "/mtls", cert=client.leaf if leaf_only else client.chain, key=client.key, headers=DEBUG)
    assert reply.status == 401
    record = parse_record(reply.headers[HEADER])
    assert (record["presented"], record["verify"], record["depth"]) == ("yes", verify, depth)
    assert (record["anchor"], record["result"]) == ("none", FAILED)
    assert reply.headers["kong-route-name"] == "mtls"  # Kong's debug headers are on a plugin's exit too


def test_nothing_presented(setup: Setup) -> None:
    reply = curl(setup.port, "/mtls", headers=DEBUG)
    assert reply.status == 401
    record = parse_record(reply.headers[HEADER])
    assert record == {
        "requested": "yes",
        "requested_by": "*",
        "ca_dns": "none",
        "presented": "no",
        "result": "401 No required TLS certificate was sent",
    }


def test_valid_but_unknown_falls_back_to_anonymous(setup: Setup, client_pki: ClientPki) -> None:
    nobody = client_pki.nobody
    reply = curl(setup.port, "/anon", cert=nobody.chain, key=nobody.key, headers=DEBUG)
    assert reply.status == 200
    record = parse_record(reply.headers[HEADER])
    assert (record["verify"], record["consumer"], record["matched_by"]) == ("ok", "anonymous-user", "anonymous")


def test_sni_pattern_and_the_ca_names_sent(setup: Setup, client_pki: ClientPki) -> None:
    alice = client_pki.alice
    output, reply = s_client_request(
        setup.port, "/sni", sni="a.mtls.test", cert=alice.leaf, key=alice.key, cert_chain=alice.chain
    )
    assert "Acceptable client certificate CA names\nCN = mTLS Root A" in output  # what the record says was sent
    assert reply is not None and reply.status == 200
    traced = curl(setup.port, "/sni", cert=alice.chain, key=alice.key, sni="a.mtls.test", headers=DEBUG)
    record = parse_record(traced.headers[HEADER])
    assert (record["requested_by"], record["ca_dns"]) == ("a.mtls.test", "CN=mTLS Root A")
    assert record["result"] == "authenticated"


def test_route_without_the_plugin_shows_only_the_request(setup: Setup) -> None:
    reply = curl(setup.port, "/plain", headers=DEBUG)
    assert reply.status == 200
    assert parse_record(reply.headers[HEADER]) == {"requested": "yes", "requested_by": "*", "ca_dns": "none"}


def test_plain_http_request(setup: Setup) -> None:
    reply = curl(setup.gw.proxy_port, "/mtls", headers=DEBUG, plain=True)
    assert reply.status == 401
    assert parse_record(reply.headers[HEADER]) == {
        "presented": "no",
        "over": "plain-http",
        "result": "401 No required TLS certificate was sent",
    }
    assert "x-gateway-tls-downstream" not in reply.headers
