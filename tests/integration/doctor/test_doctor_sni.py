"""``gateway doctor sni NAME`` against a real running gateway: each step of Kong's SNI order, a live PATCH of a
certificate's ``snis``, the client-certificate request, and ``--connect``'s real handshake compared with what the
Admin API says (and with ``openssl s_client``'s view of the same handshake)."""

from __future__ import annotations

import json
import pathlib
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fixtures.certs import Issued, days, make_ca, make_cert
from tests.fixtures.gateway_process import GatewayProcess, run_cli, running_gateway
from tests.fixtures.ports import closed_port
from tests.integration.tls.served.clients import s_client
from tests.integration.tls.upstream.kong import KongClient

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def kong(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KongClient]:
    env = {"KONG_LOG_LEVEL": "debug"}
    with running_gateway(tmp_path_factory.mktemp("doctor-sni"), env, ssl=True) as gw:
        client = KongClient(gw)
        try:
            yield client
        finally:
            client.close()


def doctor(gw: GatewayProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("doctor", "sni", *args, env=gw.env)


def doctor_json(gw: GatewayProcess, *args: str) -> tuple[int, dict[str, Any]]:
    out = doctor(gw, *args, "--json")
    document: dict[str, Any] = json.loads(out.stdout)
    assert document["exit"] == out.returncode
    return out.returncode, document


def found(document: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [f for f in document["findings"] if f["kind"] == kind]


def add_certificate(kong: KongClient, leaf: Issued, snis: list[str]) -> str:
    return str(kong.post("/certificates", {"cert": leaf.chain_pem, "key": leaf.key_pem, "snis": snis})["id"])


def test_each_rule_of_kongs_sni_order(kong: KongClient) -> None:
    leaves = {
        "exact": make_cert("exact.test", key_type="ec", sans=["exact.test"]),
        "prefix": make_cert("wild.test", key_type="ec", sans=["*.wild.test"]),
        "suffix": make_cert("www.suffix", key_type="ec", sans=["www.suffix.test"]),
        "star": make_cert("star.test", key_type="ec", sans=["star.test"]),
    }
    # (SNI asked, rule, the certificate served (None: the generated default), names covered, covers the SNI)
    steps: list[tuple[str, str, str | None, list[str], bool]] = [
        ("other.test", "generated-default", None, [], False),
    ]
    ids: dict[str, str] = {}
    for sni, rule, owner, names, covers in steps:
        code, document = doctor_json(kong.gw, sni, "--connect")
        [served] = found(document, "served")
        assert (served["facts"]["rule"], served["facts"]["certificate"]) == (rule, ids.get(owner or ""))
        assert found(document, "names")[0]["facts"]["names"] == names
        assert bool(found(document, "name_match")) is covers
        assert code == (0 if covers else 1)
        assert found(document, "served_match"), document
    ids["exact"] = add_certificate(kong, leaves["exact"], ["exact.test"])
    ids["prefix"] = add_certificate(kong, leaves["prefix"], ["*.wild.test"])
    ids["suffix"] = add_certificate(kong, leaves["suffix"], ["www.suffix.*"])
    ids["star"] = add_certificate(kong, leaves["star"], ["*"])
    steps = [
        ("exact.test", "exact", "exact", ["DNS:exact.test"], True),
        ("a.wild.test", "wildcard-prefix", "prefix", ["DNS:*.wild.test"], True),
        ("www.suffix.test", "wildcard-suffix", "suffix", ["DNS:www.suffix.test"], True),
        ("other.test", "catch-all", "star", ["DNS:star.test"], False),
    ]
    for sni, rule, owner, names, covers in steps:
        code, document = doctor_json(kong.gw, sni, "--connect")
        [served] = found(document, "served")
        assert (served["facts"]["rule"], served["facts"]["certificate"]) == (rule, ids.get(owner or "")), sni
        assert found(document, "names")[0]["facts"]["names"] == names
        assert bool(found(document, "name_match")) is covers
        assert found(document, "served_match") and not found(document, "served_mismatch"), document
        assert code == (0 if covers else 1), document
    out = doctor(kong.gw, "a.wild.test")
    lines = out.stdout.splitlines()
    assert lines[0] == (
        f"ok       a handshake with the SNI a.wild.test is served the certificate {ids['prefix']} (CN=wild.test; "
        "ecdsa key), by the rule wildcard-prefix: no SNI entity has this exact name; *.wild.test (a leading *) covers "
        "it (Kong's second step)."
    )
    assert "ok       no client certificate is requested: no enabled mtls-auth instance covers this SNI." in lines
    assert kong.gw.proxy_ssl_port is not None
    assert s_client(kong.gw.proxy_ssl_port, "a.wild.test").leaf.subject.rfc4514_string() == "CN=wild.test"


def test_a_live_patch_of_a_certificates_snis(kong: KongClient) -> None:
    first = make_cert("patched-one.test", key_type="ec", sans=["moving.test"])
    second = make_cert("patched-two.test", key_type="rsa", sans=["moving.test"])
    one = add_certificate(kong, first, ["moving.test"])
    two = add_certificate(kong, second, [])
    _, document = doctor_json(kong.gw, "moving.test", "--connect")
    assert found(document, "served")[0]["facts"]["certificate"] == one
    kong.patch(f"/certificates/{one}", {"snis": []})
    kong.patch(f"/certificates/{two}", {"snis": ["moving.test"]})
    code, document = doctor_json(kong.gw, "moving.test", "--connect")
    assert code == 0, json.dumps(document) + "\n".join(kong.error_lines()[-15:])
    assert found(document, "served")[0]["facts"]["certificate"] == two
    [match] = found(document, "served_match")
    assert "served CN=patched-two.test" in match["message"] and f"certificate {two}, as said" in match["message"]


def test_the_client_certificate_request_and_its_ca_names(kong: KongClient) -> None:
    ca = make_ca("Doctor Clients Root", key_type="ec")
    ca_id = str(kong.post("/ca_certificates", {"cert": ca.cert_pem})["id"])
    add_certificate(kong, make_cert("asks.test", key_type="ec", sans=["asks.test"]), ["asks.test"])
    svc = kong.post("/services", {"name": "asks", "url": "http://127.0.0.1:9/"})
    route = kong.post(
        "/routes", {"paths": ["/asks"], "snis": ["asks.test"], "protocols": ["https"], "service": {"id": svc["id"]}}
    )
    kong.post(
        f"/routes/{route['id']}/plugins",
        {"name": "mtls-auth", "config": {"ca_certificates": [ca_id], "send_ca_dn": True}},
    )
    code, document = doctor_json(kong.gw, "asks.test", "--connect")
    assert code == 0, document
    [request] = found(document, "client_cert_request")
    assert request["message"] == (
        "a client certificate is requested, by mtls-auth for asks.test, with the CA names CN=Doctor Clients Root."
    )
    assert not found(document, "served_mismatch")  # the CertificateRequest carried that very name


def test_an_expired_certificate_and_no_sni(kong: KongClient) -> None:
    old = make_cert("old.test", key_type="ec", sans=["old.test"], not_before=days(-30), not_after=days(-2))
    add_certificate(kong, old, ["old.test"])
    code, document = doctor_json(kong.gw, "old.test")
    assert code == 1
    assert found(document, "expired")[0]["message"].startswith("it expired on ")
    code, document = doctor_json(kong.gw, "", "--connect")
    [served] = found(document, "served")
    assert served["message"].startswith("a handshake without SNI is served the default certificate")
    assert served["facts"]["rule"] == "generated-default"  # no SNI: the default, never the * entity
    assert found(document, "served_match")


def test_ssl_cert_is_the_rule_when_set(tmp_path: pathlib.Path) -> None:
    leaf = make_cert("listener.test", key_type="ec", sans=["listener.test"])
    (tmp_path / "cert.pem").write_text(leaf.chain_pem)
    (tmp_path / "key.pem").write_text(leaf.key_pem)
    env = {"KONG_SSL_CERT": str(tmp_path / "cert.pem"), "KONG_SSL_CERT_KEY": str(tmp_path / "key.pem")}
    with running_gateway(tmp_path, env, ssl=True) as gw:
        out = run_cli("doctor", "sni", "listener.test", "--connect", env=gw.env)
        unreachable = f"http://127.0.0.1:{closed_port()}"
        down = run_cli("doctor", "sni", "listener.test", "--admin", unreachable)
    assert out.returncode == 0, out.stdout
    assert "by the rule ssl_cert: no SNI entity matches (and none is named *)" in out.stdout
    assert "ok       the leaf covers listener.test (X509_check_host)." in out.stdout
    assert "the default certificate, as said." in out.stdout
    assert down.returncode == 1
    assert f"problem  cannot reach the Admin API at {unreachable} (" in down.stdout


def test_a_gateway_without_an_ssl_listener_says_so(tmp_path: pathlib.Path) -> None:
    with running_gateway(tmp_path) as gw:
        out = run_cli("doctor", "sni", "any.test", "--admin", gw.admin_url)
    assert out.returncode == 1
    assert (
        f"problem  the gateway at {gw.admin_url} answers GET /tls/served with 404: no proxy listener terminates TLS "
        "(proxy_listen has no 'ssl' listener): no certificate is served. Fix: add an ssl entry to proxy_listen."
    ) in out.stdout.splitlines()
