"""Plugin precedence (Kong's ``lookup_cfg``), per-route chains, mtls-auth's SNI map and its per-connection verdict."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from gateway.plugins import BuildContext, Exit, Plugin, PluginContext, PluginIndex, register_handler, run_access
from gateway.plugins.chains import lookup_instance
from gateway.plugins.mtls_auth import MtlsAuth
from gateway.plugins.mtls_auth.handshake import ClientCertSniMap, SniRequest
from gateway.plugins.mtls_auth.names import rfc2253, subject_names
from tests.fixtures.certs import make_ca, make_cert


def _id() -> str:
    return str(uuid.uuid4())


@register_handler
class _Tag(Plugin):
    """A test plugin that records which instance ran and can authenticate a consumer."""

    NAME = "test-tag"
    PRIORITY = 10

    def access(self, ctx: PluginContext) -> None:
        ctx.data.setdefault("ran", []).append(self.row["config"]["tag"])


@register_handler
class _Auth(Plugin):
    NAME = "test-auth"
    PRIORITY = 2000
    NO_CONSUMER = True

    def access(self, ctx: PluginContext) -> Exit | None:
        consumer = self.row["config"].get("consumer")
        if consumer is None:
            return Exit.message(401, "nope")
        ctx.consumer = {"id": consumer}
        return None


def _plugin(name: str, tag: str | None = None, **scope: str) -> dict[str, Any]:
    row: dict[str, Any] = {"id": _id(), "name": name, "enabled": True, "config": {"tag": tag}}
    for key, value in scope.items():
        row[key] = {"id": value}
    return row


def test_lookup_order_is_kongs() -> None:
    r, s, c = "r", "s", "c"
    names = ["rsc", "rc", "sc", "rs", "c", "r", "s", "g"]
    keys = [(r, s, c), (r, None, c), (None, s, c), (r, s, None), (None, None, c), (r, None, None), (None, s, None)]
    keys.append((None, None, None))
    instances = {key: _Tag({"id": name, "config": {}}) for key, name in zip(keys, names, strict=True)}
    combos = dict(instances)
    for expected in names:
        found = lookup_instance(combos, r, s, c)
        assert found is not None and found.id == expected
        del combos[next(k for k, v in combos.items() if v.id == expected)]
    assert lookup_instance({}, r, s, c) is None


def test_chains_pick_route_over_service_over_global_and_consumer_scoped_after_auth() -> None:
    service, r1, r2, r3, consumer = _id(), _id(), _id(), _id(), _id()
    config = {
        "routes": [
            {"id": r1, "service": {"id": service}},
            {"id": r2, "service": {"id": service}},
            {"id": r3, "service": None},
        ],
        "plugins": [
            _plugin("test-tag", "global"),
            _plugin("test-tag", "service", service=service),
            _plugin("test-tag", "route", route=r1),
            _plugin("test-tag", "consumer", consumer=consumer),
            {"id": _id(), "name": "test-auth", "enabled": True, "config": {"consumer": consumer}, "route": {"id": r2}},
            {**_plugin("test-tag", "disabled", route=r3), "enabled": False},
            _plugin("not-a-registered-plugin", "x"),
        ],
    }
    index = PluginIndex.build(config)

    def ran(route: str) -> list[str]:
        chain = index.chain(route)
        assert chain is not None
        ctx = PluginContext(tls=None, conn_cache=None, headers=[], route_id=route, service_id=None)
        assert run_access(chain, ctx) is None
        return list(ctx.data["ran"])

    assert ran(r1) == ["route"]
    assert ran(r2) == ["consumer"]  # test-auth (priority 2000) authenticated the consumer first
    assert ran(r3) == ["global"]  # disabled route plugin ignored, global applies


def test_routes_without_plugins_have_no_chain() -> None:
    route = _id()
    index = PluginIndex.build({"routes": [{"id": route}], "plugins": []})
    assert index.chain(route) is None
    assert index.certificate_phase is None


def test_exit_stops_the_access_phase() -> None:
    route = _id()
    index = PluginIndex.build(
        {
            "routes": [{"id": route}],
            "plugins": [
                {"id": _id(), "name": "test-auth", "enabled": True, "config": {}},
                _plugin("test-tag", "after"),
            ],
        }
    )
    chain = index.chain(route)
    assert chain is not None
    ctx = PluginContext(tls=None, conn_cache=None, headers=[], route_id=route, service_id=None)
    result = run_access(chain, ctx)
    assert isinstance(result, Exit) and result.status == 401 and result.body == b'{"message":"nope"}'
    assert "ran" not in ctx.data


# ------------------------------------------------------------------------------------------------ SNI map
def test_sni_map_matching_is_kongs_match_sni() -> None:
    sni_map = ClientCertSniMap(
        [SniRequest("a.test"), SniRequest("*.wild.test"), SniRequest("pre.*"), SniRequest("*.deeper.wild.test")]
    )
    assert sni_map.match("a.test") is not None and sni_map.match("a.test").pattern == "a.test"  # type: ignore[union-attr]
    assert sni_map.match("x.y.deeper.wild.test").pattern == "*.deeper.wild.test"  # type: ignore[union-attr]
    assert sni_map.match("x.wild.test").pattern == "*.wild.test"  # type: ignore[union-attr]
    assert sni_map.match("pre.example.org").pattern == "pre.*"  # type: ignore[union-attr]
    assert sni_map.match("other.test") is None
    assert sni_map.match(None) is None
    with_all = ClientCertSniMap([SniRequest("a.test"), SniRequest("*")])
    assert with_all.match(None).pattern == "*"  # type: ignore[union-attr]
    assert with_all.match("b.test").pattern == "*"  # type: ignore[union-attr]


# ------------------------------------------------------------------------------------------------ mtls-auth
class _Tls:
    """A stand-in for ``TlsInfo``: counts how often the chain is read."""

    def __init__(self, chain: list[x509.Certificate]) -> None:
        self._chain = chain
        self.reads = 0

    @property
    def peer_chain(self) -> list[x509.Certificate]:
        self.reads += 1
        return self._chain


@pytest.fixture(scope="module")
def mtls() -> tuple[MtlsAuth, Any, Any]:
    root = make_ca("Unit Root")
    inter = make_ca("Unit Inter", issuer=root)
    leaf = make_cert("unit-user", inter, sans=["unit.example.com"])
    ca_id, consumer_id = _id(), _id()
    config = {
        "ca_certificates": [{"id": ca_id, "cert": root.cert_pem}],
        "consumers": [{"id": consumer_id, "username": "unit-user"}],
    }
    row = {
        "id": _id(),
        "name": "mtls-auth",
        "enabled": True,
        "config": {"ca_certificates": [ca_id], "revocation_check_mode": "SKIP", "cache_ttl": 60},
    }
    return MtlsAuth(row, BuildContext(config)), leaf, inter


def _ctx(tls: Any, cache: dict[Any, Any] | None) -> PluginContext:
    return PluginContext(tls=tls, conn_cache=cache, headers=[], route_id=None, service_id=None)


def test_verdict_is_paid_once_per_connection(mtls: tuple[MtlsAuth, Any, Any]) -> None:
    plugin, leaf, inter = mtls
    tls = _Tls([leaf.cert, inter.cert])
    cache: dict[Any, Any] = {}
    for _ in range(5):
        ctx = _ctx(tls, cache)
        assert plugin.access(ctx) is None
        assert ctx.consumer is not None and ctx.consumer["username"] == "unit-user"
        assert ctx.upstream_headers["x-consumer-username"] == ("X-Consumer-Username", "unit-user")
        assert ctx.upstream_headers["x-anonymous-consumer"] == ("X-Anonymous-Consumer", None)
    assert tls.reads == 1


def test_leaf_only_and_no_certificate(mtls: tuple[MtlsAuth, Any, Any]) -> None:
    plugin, leaf, _ = mtls
    result = plugin.access(_ctx(_Tls([leaf.cert]), None))
    assert isinstance(result, Exit) and result.body == b'{"message":"TLS certificate failed verification"}'
    result = plugin.access(_ctx(_Tls([]), None))
    assert isinstance(result, Exit) and result.body == b'{"message":"No required TLS certificate was sent"}'
    assert len(result.body) == 50
    result = plugin.access(_ctx(None, None))
    assert isinstance(result, Exit) and result.status == 401


def test_client_certificate_verifications_are_counted_once_per_verification() -> None:
    from gateway.observability.tls_metrics import TLS

    root = make_ca("Count Root", key_type="ec")
    inter = make_ca("Count Inter", issuer=root, key_type="ec")
    leaf = make_cert("count-user", inter, key_type="ec")
    ca_id = _id()
    build = BuildContext({"ca_certificates": [{"id": ca_id, "cert": root.cert_pem}]})
    config = {
        "ca_certificates": [ca_id],
        "revocation_check_mode": "SKIP",
        "skip_consumer_lookup": True,
        "cache_ttl": 60,
    }
    plugin = MtlsAuth({"id": _id(), "name": "mtls-auth", "config": config}, build)
    TLS.clear()
    try:
        for _ in range(3):  # three connections with the same chain: verified once, then the per-chain cache answers
            assert plugin.access(_ctx(_Tls([leaf.cert, inter.cert]), {})) is None
        assert isinstance(plugin.access(_ctx(_Tls([leaf.cert]), {})), Exit)  # no intermediate: 20
        assert isinstance(plugin.access(_ctx(_Tls([]), {})), Exit)
        assert isinstance(plugin.access(_ctx(None, {})), Exit)
        assert TLS.client_verifications == {("success",): 1, ("failed",): 1, ("none",): 2}
    finally:
        TLS.clear()


def test_verify_depth_limit() -> None:
    root = make_ca("Depth Root")
    inter = make_ca("Depth Inter", issuer=root)
    leaf = make_cert("depth-user", inter)
    ca_id = _id()
    build = BuildContext(
        {
            "ca_certificates": [{"id": ca_id, "cert": root.cert_pem}],
            "consumers": [{"id": _id(), "username": "depth-user"}],
        }
    )

    def plugin(depth: int | None) -> MtlsAuth:
        config = {"ca_certificates": [ca_id], "revocation_check_mode": "SKIP", "verify_depth": depth}
        return MtlsAuth({"id": _id(), "name": "mtls-auth", "config": config}, build)

    assert plugin(None).access(_ctx(_Tls([leaf.cert, inter.cert]), None)) is None
    assert plugin(1).access(_ctx(_Tls([leaf.cert, inter.cert]), None)) is None
    assert isinstance(plugin(0).access(_ctx(_Tls([leaf.cert, inter.cert]), None)), Exit)


def test_rfc2253_like_nginx() -> None:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "California"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Kong Testing"),
            x509.NameAttribute(NameOID.COMMON_NAME, "foo@example.com"),
        ]
    )
    assert rfc2253(name) == "CN=foo@example.com,O=Kong Testing,ST=California,C=US"
    tricky = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "#a, b+c é "),
            x509.NameAttribute(NameOID.EMAIL_ADDRESS, "x@y.z"),
        ]
    )
    assert rfc2253(tricky) == "emailAddress=x@y.z,CN=\\#a\\, b\\+c \\C3\\A9\\ "


def test_subject_names_are_sans_then_cn() -> None:
    cert = make_cert("the-cn", sans=["a.example.com", "127.0.0.1"]).cert
    assert subject_names(cert) == ["a.example.com", "127.0.0.1", "the-cn"]
