"""``GET /services/{s}/tls``, ``GET /tls/served`` and ``GET /snis/{name}/tls`` (our extension) against the real
gateway: after each live Admin API change, what the endpoint says agrees with what a real handshake then does (the
request's own trace, the upstream's verdict, the certificate ``openssl s_client`` receives)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.certs import make_cert
from tests.fixtures.gateway_process import running_gateway
from tests.integration.tls.served.clients import s_client
from tests.integration.tls.served.trace_clients import curl_head, parse_record
from tests.integration.tls.upstream.conftest import pki, upstreams  # noqa: F401  (fixtures)
from tests.integration.tls.upstream.kong import KongClient
from tests.integration.tls.upstream.pki import Pki
from tests.integration.tls.upstream.upstreams import Upstreams

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def kong(tmp_path_factory: pytest.TempPathFactory, upstreams: Upstreams) -> Iterator[KongClient]:  # noqa: F811
    env = {"KONG_LOG_LEVEL": "debug", "KONG_ALLOW_DEBUG_HEADER": "on"}
    with running_gateway(tmp_path_factory.mktemp("kong"), env, ssl=True) as gw:
        client = KongClient(gw)
        try:
            yield client
        finally:
            client.close()


def _profile(kong: KongClient, service: str) -> dict[str, Any]:
    res = kong.admin.get(f"/services/{service}/tls")
    assert res.status_code == 200, res.text
    return dict(res.json())


def _trace(kong: KongClient, host: str) -> tuple[int, dict[str, str], dict[str, str]]:
    res = kong.proxy.get("/", headers={"Host": host, "Kong-Debug": "1"})
    cert = parse_record(res.headers["x-gateway-tls-upstream-cert"])
    return res.status_code, cert, parse_record(res.headers["x-gateway-tls-upstream-trust"])


def _agree(profile: dict[str, Any], cert: dict[str, str], trust: dict[str, str]) -> None:
    """The endpoint's profile is the one the request's connection was made under."""
    assert cert["from"] == profile["client_certificate"]["from"]
    assert cert.get("certificate", "none") in (profile["client_certificate"]["id"] or "none", "none")
    assert trust["verify"] == ("on" if profile["verify"]["value"] else "off")
    assert trust["verify_from"] == profile["verify"]["from"]
    assert (trust["trust"], trust["trust_from"]) == (profile["trust"]["store"], profile["trust"]["from"])
    assert (trust["depth"], trust["depth_from"]) == (str(profile["depth"]["value"]), profile["depth"]["from"])


def test_service_profile_follows_each_live_patch(kong: KongClient, pki: Pki, upstreams: Upstreams) -> None:  # noqa: F811
    deep = upstreams.ports["deep"]  # root -> A -> B -> leaf: needs depth 2
    svc = kong.post("/services", {"name": "walk", "url": f"https://localhost:{deep}/", "retries": 0})
    kong.post("/routes", {"hosts": ["walk.test"], "service": {"id": svc["id"]}})
    root = str(kong.post("/ca_certificates", {"cert": pki.root.cert_pem})["id"])
    client = str(kong.post("/certificates", {"cert": pki.client_one.chain_pem, "key": pki.client_one.key_pem})["id"])
    steps: list[tuple[dict[str, Any], int, str, dict[str, Any]]] = [
        # (patch, expected status, expected result, expected profile values)
        (
            {},
            200,
            "not-checked",
            {"verify": (False, "default"), "depth": (1, "default"), "store": ("empty", "default")},
        ),
        # empty store and depth 1 against two intermediates: OpenSSL reports 22 (depth), as nginx under Kong
        ({"tls_verify": True}, 502, "22:certificate chain too long", {"verify": (True, "service")}),
        ({"tls_verify_depth": 2}, 502, "20:unable to get local issuer certificate", {"depth": (2, "service")}),
        ({"ca_certificates": [root]}, 200, "ok", {"store": (f"ca_certificates:{root}", "service")}),
        ({"client_certificate": {"id": client}}, 200, "ok", {"cert": ("service", client)}),
        ({"tls_verify": False}, 200, "not-checked", {"verify": (False, "service")}),
        (
            {"client_certificate": None, "ca_certificates": None, "tls_verify_depth": None, "tls_verify": None},
            200,
            "not-checked",
            {"verify": (False, "default"), "depth": (1, "default"), "cert": ("none", None)},
        ),
    ]
    for patch, status, result, expected in steps:
        if patch:
            kong.patch("/services/walk", patch)
        profile = _profile(kong, "walk")
        assert profile["tls"] is True and profile["service"]["id"] == svc["id"]
        if "verify" in expected:
            assert (profile["verify"]["value"], profile["verify"]["from"]) == expected["verify"]
        if "depth" in expected:
            assert (profile["depth"]["value"], profile["depth"]["from"]) == expected["depth"]
        if "store" in expected:
            assert (profile["trust"]["store"], profile["trust"]["from"]) == expected["store"]
        if "cert" in expected:
            assert (profile["client_certificate"]["from"], profile["client_certificate"]["id"]) == expected["cert"]
        got, cert, trust = _trace(kong, "walk.test")
        assert (got, trust["result"]) == (status, result), patch
        _agree(profile, cert, trust)


def test_service_tls_for_a_plain_service_and_an_unknown_one(kong: KongClient) -> None:
    svc = kong.post("/services", {"name": "plain-one", "url": "http://127.0.0.1:9/"})
    res = kong.admin.get("/services/plain-one/tls")
    assert res.status_code == 200
    assert res.json() == {"service": {"id": svc["id"], "name": "plain-one"}, "protocol": "http", "tls": False}
    missing = kong.admin.get("/services/no-such-service/tls")
    assert (missing.status_code, missing.json()) == (404, {"message": "Not found"})


def _served(kong: KongClient, sni: str | None) -> dict[str, Any]:
    res = kong.admin.get("/tls/served", params={"sni": sni} if sni is not None else None)
    assert res.status_code == 200, res.text
    return dict(res.json())


def test_served_certificate_agrees_with_real_handshakes(kong: KongClient, tmp_path: Path) -> None:
    """Each rule in turn, through live changes; the endpoint, the request's trace and ``s_client``'s leaf agree."""
    port = kong.gw.proxy_ssl_port
    assert port is not None
    svc = kong.post("/services", {"name": "served", "url": "http://127.0.0.1:9/"})
    kong.post("/routes", {"paths": ["/served"], "service": {"id": svc["id"]}})
    leaves = {name: make_cert(name, key_type="ec", sans=[name]) for name in ("wild.test", "star.test", "exact.test")}
    ids = {
        name: str(kong.post("/certificates", {"cert": leaf.chain_pem, "key": leaf.key_pem})["id"])
        for name, leaf in leaves.items()
    }
    # (SNI entity to create -> its certificate, the client's SNI, the rule, whose certificate is served)
    steps: list[tuple[tuple[str, str] | None, str | None, str, str | None]] = [
        (None, None, "generated-default", None),
        (("*.serve.test", "wild.test"), "a.serve.test", "wildcard-prefix", "wild.test"),
        (("*", "star.test"), "a.serve.test", "wildcard-prefix", "wild.test"),  # the prefix wildcard beats "*"
        (None, "other.test", "catch-all", "star.test"),
        (None, None, "generated-default", None),  # no SNI: the default, never "*"
        (("a.serve.test", "exact.test"), "a.serve.test", "exact", "exact.test"),
    ]
    for entity, sni, rule, owner in steps:
        if entity is not None:
            kong.post("/snis", {"name": entity[0], "certificate": {"id": ids[entity[1]]}})
        served = _served(kong, sni)
        assert served["certificate"]["rule"] == rule
        assert served["certificate"]["id"] == (ids[owner] if owner else None)
        assert served["client_certificate_request"] == {"requested": False, "requested_by": None, "ca_dns": []}
        status, headers = curl_head(port, sni, path="/served")
        assert status == 502  # nothing listens on the service's port: the trace rides on the 502 too
        record = parse_record(headers["x-gateway-tls-downstream"])
        assert (record["rule"], record["certificate"]) == (rule, served["certificate"]["id"] or "none")
        assert record["sni_entity"] == (served["certificate"]["sni_entity"] or "none")
        handshake = s_client(port, sni)
        assert handshake.leaf.subject.rfc4514_string() == served["certificate"]["subject"]
        assert served["certificate"]["key_types"] == (["ecdsa"] if owner else ["rsa", "ecdsa"])
    by_entity = kong.admin.get("/snis/*.serve.test/tls")
    assert by_entity.status_code == 200
    assert by_entity.json()["certificate"]["rule"] == "exact"  # the entity's own name is an exact hit
    assert by_entity.json()["certificate"]["id"] == ids["wild.test"]
    assert kong.admin.get("/snis/not-there.test/tls").status_code == 404


def test_served_says_when_mtls_auth_asks(kong: KongClient, pki: Pki) -> None:  # noqa: F811
    ca = str(kong.post("/ca_certificates", {"cert": pki.other_ca.cert_pem})["id"])
    svc = kong.post("/services", {"name": "asks", "url": "http://127.0.0.1:9/"})
    route = kong.post(
        "/routes", {"paths": ["/asks"], "snis": ["asks.test"], "protocols": ["https"], "service": {"id": svc["id"]}}
    )
    kong.post(
        f"/routes/{route['id']}/plugins", {"name": "mtls-auth", "config": {"ca_certificates": [ca], "send_ca_dn": True}}
    )
    asked = _served(kong, "asks.test")["client_certificate_request"]
    assert asked == {"requested": True, "requested_by": "asks.test", "ca_dns": ["CN=Yolo42.1"]}
    assert _served(kong, "other.test")["client_certificate_request"]["requested"] is False
    port = kong.gw.proxy_ssl_port
    assert port is not None
    _, headers = curl_head(port, "asks.test", path="/asks")
    record = parse_record(headers["x-gateway-tls-client-auth"])
    assert (record["requested"], record["requested_by"], record["ca_dns"]) == ("yes", "asks.test", "CN=Yolo42.1")


def test_with_worker_processes_the_master_answers_from_a_snapshot_it_builds(tmp_path: Path, pki: Pki) -> None:  # noqa: F811
    """The master serves no traffic (its own snapshot has no services, no certificates): it builds one from the
    store, and what it says is what a worker then serves."""
    env = {"KONG_LOG_LEVEL": "debug", "KONG_ALLOW_DEBUG_HEADER": "on", "KONG_WORKER_PROCESSES": "2"}
    with running_gateway(tmp_path, env, ssl=True) as gw:
        kong = KongClient(gw)
        try:
            root = str(kong.post("/ca_certificates", {"cert": pki.root.cert_pem})["id"])
            kong.post(
                "/services", {"name": "w", "url": "https://localhost:9/", "tls_verify": True, "ca_certificates": [root]}
            )
            leaf = make_cert("workers.test", key_type="ec", sans=["workers.test"])
            cert = kong.post("/certificates", {"cert": leaf.chain_pem, "key": leaf.key_pem, "snis": ["workers.test"]})
            profile = _profile(kong, "w")
            assert (profile["verify"], profile["trust"]["store"]) == (
                {"value": True, "from": "service"},
                f"ca_certificates:{root}",
            )
            served = _served(kong, "workers.test")
            assert (served["certificate"]["id"], served["certificate"]["rule"]) == (cert["id"], "exact")
            assert gw.proxy_ssl_port is not None
            assert s_client(gw.proxy_ssl_port, "workers.test").leaf.subject.rfc4514_string() == "CN=workers.test"
        finally:
            kong.close()
