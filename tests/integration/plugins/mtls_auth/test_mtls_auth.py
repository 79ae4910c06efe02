"""mtls-auth end to end (issue 5 acceptance): real clients against the real gateway process.

Routes on one ``ssl`` listener (service -> nginx echoing the identity headers it received):

- ``/mtls``   mtls-auth, CA A (root), consumer lookup on (route without snis: every handshake is asked)
- ``/plain``  no plugin
- ``/skip``   mtls-auth with ``skip_consumer_lookup`` and ``authenticated_group_by=DN``, plus tls-metadata-headers
- ``/anon``   mtls-auth with ``anonymous``
- ``/sni`` on ``a.mtls.test`` (CA A) and on ``b.mtls.test`` (CA B), both with ``send_ca_dn``
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import unquote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from tests.fixtures.admin_client import Admin
from tests.fixtures.gateway_process import GatewayProcess
from tests.fixtures.nginx import NginxServer
from tests.integration.plugins.mtls_auth.conftest import (
    ClientPki,
    PythonClient,
    curl,
    s_client_request,
    start_gateway,
    wait_until,
)

NO_CERT = '{"message":"No required TLS certificate was sent"}'
FAILED = '{"message":"TLS certificate failed verification"}'


@dataclass
class Setup:
    gw: GatewayProcess
    port: int
    consumers: dict[str, dict[str, object]]


@pytest.fixture(scope="module")
def setup(
    tmp_path_factory: pytest.TempPathFactory, echo_upstream: NginxServer, client_pki: ClientPki
) -> Iterator[Setup]:
    gw = start_gateway(tmp_path_factory.mktemp("mtls-gw"))
    admin = Admin(gw)
    try:
        ca_a = admin.post("/ca_certificates", {"cert": client_pki.root_a.cert_pem})["id"]
        ca_b = admin.post("/ca_certificates", {"cert": client_pki.root_b.cert_pem})["id"]
        admin.post("/services", {"name": "echo", "url": f"http://127.0.0.1:{echo_upstream.port}"})
        consumers = {
            "alice": admin.post("/consumers", {"username": "client-a", "custom_id": "alice-cid"}),
            "bob": admin.post("/consumers", {"username": "bob-the-consumer"}),
            "carol": admin.post("/consumers", {"custom_id": "carol-42"}),
            "clientb": admin.post("/consumers", {"username": "client-b"}),
            "anon": admin.post("/consumers", {"username": "anonymous-user"}),
        }
        admin.post(
            "/consumers/bob-the-consumer/mtls-auth", {"subject_name": "bob.example.com", "ca_certificate": {"id": ca_a}}
        )
        mtls = admin.post("/services/echo/routes", {"name": "mtls", "paths": ["/mtls"]})
        admin.post(f"/routes/{mtls['id']}/plugins", {"name": "mtls-auth", "config": {"ca_certificates": [ca_a]}})
        admin.post("/services/echo/routes", {"name": "plain", "paths": ["/plain"]})
        admin.post("/services/echo/routes", {"name": "skip", "paths": ["/skip"]})
        admin.post(
            "/routes/skip/plugins",
            {
                "name": "mtls-auth",
                "config": {"ca_certificates": [ca_a], "skip_consumer_lookup": True, "authenticated_group_by": "DN"},
            },
        )
        admin.post(
            "/routes/skip/plugins", {"name": "tls-metadata-headers", "config": {"inject_client_cert_details": True}}
        )
        admin.post("/services/echo/routes", {"name": "anon", "paths": ["/anon"]})
        admin.post(
            "/routes/anon/plugins",
            {"name": "mtls-auth", "config": {"ca_certificates": [ca_a], "anonymous": "anonymous-user"}},
        )
        for name, sni, ca in (("sni-a", "a.mtls.test", ca_a), ("sni-b", "b.mtls.test", ca_b)):
            admin.post(
                "/services/echo/routes", {"name": name, "paths": ["/sni"], "snis": [sni], "protocols": ["https"]}
            )
            admin.post(
                f"/routes/{name}/plugins",
                {"name": "mtls-auth", "config": {"ca_certificates": [ca], "send_ca_dn": True}},
            )
        port = gw.proxy_ssl_port
        assert port is not None
        alice = client_pki.alice
        last = wait_until(
            lambda: curl(port, "/sni", cert=client_pki.other.chain, key=client_pki.other.key, sni="b.mtls.test"),
            lambda r: r.status == 200,
        )
        assert last.status == 200, last
        assert curl(port, "/mtls", cert=alice.chain, key=alice.key).status == 200
        yield Setup(gw, port, consumers)
    finally:
        admin.close()
        assert gw.stop() == 0


# ------------------------------------------------------------------------------------------------ acceptance
def test_leaf_and_intermediates_give_200_with_consumer_headers(setup: Setup, client_pki: ClientPki) -> None:
    alice = client_pki.alice
    reply = curl(setup.port, "/mtls", cert=alice.chain, key=alice.key)
    assert reply.status == 200
    echo = reply.echo
    consumer = setup.consumers["alice"]
    assert echo["id"] == consumer["id"]
    assert echo["user"] == "client-a"
    assert echo["cid"] == "alice-cid"
    assert echo["anon"] == ""


def test_openssl_s_client_with_cert_chain(setup: Setup, client_pki: ClientPki) -> None:
    alice = client_pki.alice
    assert alice.inter is not None
    out, reply = s_client_request(setup.port, "/mtls", cert=alice.leaf, key=alice.key, cert_chain=alice.inter)
    assert reply is not None, out
    assert reply.status == 200
    assert reply.echo["user"] == "client-a"


def test_python_ssl_client_keepalive(setup: Setup, client_pki: ClientPki) -> None:
    alice = client_pki.alice
    client = PythonClient(setup.port, chain=alice.chain, key=alice.key)
    try:
        for _ in range(5):
            reply = client.get("/mtls")
            assert reply.status == 200
            assert reply.echo["user"] == "client-a"
    finally:
        client.close()


def test_leaf_only_issuer_not_trusted_fails_verification(setup: Setup, client_pki: ClientPki) -> None:
    start = setup.gw.error_log.stat().st_size
    alice = client_pki.alice
    reply = curl(setup.port, "/mtls", cert=alice.leaf, key=alice.key)
    assert reply.status == 401
    assert reply.body == FAILED
    assert "request_id" not in reply.body
    log = setup.gw.error_log.read_text()[start:]
    assert "[mtls-auth] client certificate verify error: (21:unable to verify the first certificate)" in log


def test_no_certificate_is_401_no_required_certificate(setup: Setup) -> None:
    reply = curl(setup.port, "/mtls")
    assert reply.status == 401
    assert reply.body == NO_CERT
    assert reply.headers["content-length"] == "50"
    assert reply.headers["content-type"] == "application/json; charset=utf-8"
    assert reply.headers["server"].startswith("kong/")
    assert "x-kong-response-latency" in reply.headers


def test_plain_http_is_401_no_required_certificate(setup: Setup) -> None:
    reply = curl(setup.gw.proxy_port, "/mtls", plain=True)
    assert reply.status == 401
    assert reply.body == NO_CERT


def test_certificate_from_another_ca_is_401(setup: Setup, client_pki: ClientPki) -> None:
    other = client_pki.other
    reply = curl(setup.port, "/mtls", cert=other.chain, key=other.key)
    assert reply.status == 401
    assert reply.body == FAILED


def test_expired_certificate_is_401(setup: Setup, client_pki: ClientPki) -> None:
    start = setup.gw.error_log.stat().st_size
    expired = client_pki.expired
    reply = curl(setup.port, "/mtls", cert=expired.chain, key=expired.key)
    assert reply.status == 401
    assert reply.body == FAILED
    assert "(10:certificate has expired)" in setup.gw.error_log.read_text()[start:]


def test_self_signed_certificate_is_401(setup: Setup, client_pki: ClientPki) -> None:
    me = client_pki.self_signed
    assert curl(setup.port, "/mtls", cert=me.chain, key=me.key).status == 401


def test_route_without_mtls_is_unaffected(setup: Setup, client_pki: ClientPki) -> None:
    assert curl(setup.port, "/plain").status == 200
    other = client_pki.other  # a certificate the listener would reject elsewhere
    assert curl(setup.port, "/plain", cert=other.chain, key=other.key).status == 200
    client = PythonClient(setup.port)
    try:
        assert client.get("/plain").status == 200
    finally:
        client.close()


def test_two_snis_with_different_cas_accept_only_their_clients(setup: Setup, client_pki: ClientPki) -> None:
    alice, other = client_pki.alice, client_pki.other
    assert curl(setup.port, "/sni", cert=alice.chain, key=alice.key, sni="a.mtls.test").status == 200
    assert curl(setup.port, "/sni", cert=other.chain, key=other.key, sni="a.mtls.test").status == 401
    ok = curl(setup.port, "/sni", cert=other.chain, key=other.key, sni="b.mtls.test")
    assert ok.status == 200
    assert ok.echo["user"] == "client-b"
    assert curl(setup.port, "/sni", cert=alice.chain, key=alice.key, sni="b.mtls.test").status == 401


def _ca_names(output: str) -> list[str]:
    lines = output.splitlines()
    try:
        at = next(i for i, line in enumerate(lines) if line.startswith("Acceptable client certificate CA names"))
    except StopIteration:
        return []
    names = []
    for line in lines[at + 1 :]:
        if not line.strip() or line.startswith(("Requested", "Client Certificate Types", "Shared", "Peer", "---")):
            break
        names.append(line.strip())
    return names


def test_send_ca_dn_is_visible_in_s_client(setup: Setup) -> None:
    out_a, _ = s_client_request(setup.port, "/sni", sni="a.mtls.test")
    assert _ca_names(out_a) == ["CN = mTLS Root A"], out_a
    out_b, _ = s_client_request(setup.port, "/sni", sni="b.mtls.test")
    assert _ca_names(out_b) == ["CN = mTLS Root B"], out_b
    # without send_ca_dn (the catch-all from /mtls): a CertificateRequest with no names
    out, _ = s_client_request(setup.port, "/plain", sni="other.test")
    assert "No client certificate CA names sent" in out


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_no_session_resumption_on_client_certificate_handshakes(
    setup: Setup, client_pki: ClientPki, tmp_path: pathlib.Path, version: str
) -> None:
    """Kong's ``disable_session_reuse``: a session born on a certificate-requesting handshake is never resumed."""
    alice = client_pki.alice
    sess = tmp_path / "sess.pem"
    out1, reply1 = s_client_request(
        setup.port,
        "/sni",
        cert=alice.leaf,
        key=alice.key,
        cert_chain=alice.inter,
        sni="a.mtls.test",
        extra=(version, "-sess_out", str(sess)),
    )
    assert reply1 is not None and reply1.status == 200, out1
    assert "TLS session ticket:" not in out1  # no ticket issued
    if not sess.exists():
        return  # nothing the client could even try to resume (TLS 1.3 without a ticket)
    out2, reply2 = s_client_request(
        setup.port,
        "/sni",
        cert=alice.leaf,
        key=alice.key,
        cert_chain=alice.inter,
        sni="a.mtls.test",
        extra=(version, "-sess_in", str(sess)),
    )
    assert "\nReused," not in out2 and "\nNew," in out2, out2
    assert reply2 is not None and reply2.status == 200, out2


# ------------------------------------------------------------------------------------------------ consumers
def test_credential_with_issuing_ca_maps_san_to_consumer(setup: Setup, client_pki: ClientPki) -> None:
    bob = client_pki.bob
    echo = curl(setup.port, "/mtls", cert=bob.chain, key=bob.key).echo
    assert echo["user"] == "bob-the-consumer"
    assert echo["id"] == setup.consumers["bob"]["id"]
    assert echo["cid"] == ""


def test_consumer_by_custom_id(setup: Setup, client_pki: ClientPki) -> None:
    carol = client_pki.carol
    echo = curl(setup.port, "/mtls", cert=carol.chain, key=carol.key).echo
    assert echo["cid"] == "carol-42"
    assert echo["user"] == ""


def test_valid_certificate_without_consumer_is_401(setup: Setup, client_pki: ClientPki) -> None:
    start = setup.gw.error_log.stat().st_size
    nobody = client_pki.nobody
    reply = curl(setup.port, "/mtls", cert=nobody.chain, key=nobody.key)
    assert reply.status == 401
    assert reply.body == FAILED
    assert "[mtls-auth] certificate is valid but consumer matching failed" in setup.gw.error_log.read_text()[start:]


def test_client_supplied_consumer_headers_are_stripped(setup: Setup, client_pki: ClientPki) -> None:
    alice = client_pki.alice
    spoof = (
        "X-Consumer-ID: spoofed",
        "X-Consumer-Custom-ID: spoofed",
        "X-Anonymous-Consumer: true",
        "X-Client-Cert-DN: CN=root",
        "X-Credential-Identifier: spoofed",
    )
    echo = curl(setup.port, "/mtls", cert=alice.chain, key=alice.key, headers=spoof).echo
    assert echo["id"] == setup.consumers["alice"]["id"]
    assert echo["cid"] == "alice-cid"
    assert echo["anon"] == ""
    assert echo["dn"] == ""
    assert echo["cred"] == ""


def test_anonymous_consumer_on_failure(setup: Setup, client_pki: ClientPki) -> None:
    echo = curl(setup.port, "/anon").echo
    assert echo["user"] == "anonymous-user"
    assert echo["anon"] == "true"
    other = client_pki.other
    assert curl(setup.port, "/anon", cert=other.chain, key=other.key).echo["anon"] == "true"
    alice = client_pki.alice
    echo = curl(setup.port, "/anon", cert=alice.chain, key=alice.key).echo
    assert echo["user"] == "client-a"
    assert echo["anon"] == ""


def test_skip_consumer_lookup_sends_dn_and_san_and_certificate_details(setup: Setup, client_pki: ClientPki) -> None:
    alice = client_pki.alice
    reply = curl(setup.port, "/skip", cert=alice.chain, key=alice.key, headers=("X-Consumer-ID: spoofed",))
    assert reply.status == 200
    echo = reply.echo
    assert echo["dn"] == "CN=client-a"
    assert echo["san"] == "alice.example.com,client-a"
    assert echo["id"] == ""
    cert = alice.issued.cert
    assert echo["sdn"] == "CN=client-a"
    assert echo["idn"] == "CN=mTLS Intermediate A"
    serial = f"{cert.serial_number:X}"
    assert echo["serial"] == ("0" + serial if len(serial) % 2 else serial)
    assert x509.load_pem_x509_certificate(unquote(echo["cert"]).encode()) == cert
    assert echo["fp"] == cert.fingerprint(hashes.SHA1()).hex()
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "client-a"


def test_consumer_credential_endpoint_behaves_like_kong(setup: Setup) -> None:
    admin = Admin(setup.gw)
    try:
        listed = admin.get("/consumers/bob-the-consumer/mtls-auth")
        assert [c["subject_name"] for c in listed["data"]] == ["bob.example.com"]
        res = admin.http.post("/consumers/bob-the-consumer/mtls-auth", json={})
        assert res.status_code == 400
        assert json.loads(res.text)["fields"] == {"subject_name": "required field missing"}
        assert admin.http.get("/consumers/nope/mtls-auth").status_code == 404
    finally:
        admin.close()
