"""``gateway.tls.upstream`` (profile, connect): Kong's precedence rules, the content-based identity, peer names,
failure wording."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from OpenSSL import SSL

from gateway.settings import ConfigError, load_settings
from gateway.tls.engine.errors import TlsHandshakeError
from gateway.tls.upstream.connect import SessionCache, describe_handshake_error, peer_names
from gateway.tls.upstream.profile import ContextCache, UpstreamTlsCompiler, identity_label
from tests.fixtures.certs import Issued, make_ca, make_cert


@pytest.fixture(scope="module")
def certs() -> dict[str, Issued]:
    root = make_ca("Root", key_type="ec")
    inter = make_ca("Inter", issuer=root, key_type="ec")
    return {
        "root": root,
        "inter": inter,
        "other": make_ca("Other", key_type="ec"),
        "one": make_cert("one.test", issuer=inter, key_type="ec"),
        "two": make_cert("two.test", issuer=inter, key_type="ec"),
        "global": make_cert("global.test", issuer=inter, key_type="ec"),
    }


def _settings(tmp_path: Path, **overrides: str) -> Any:
    return load_settings(env={}, overrides={"prefix": str(tmp_path), **overrides})


def _service(**fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "protocol": "https",
        "host": "backend.test",
        "client_certificate": None,
        "tls_verify": None,
        "tls_verify_depth": None,
        "ca_certificates": None,
    }
    row.update(fields)
    return row


def _cert_row(issued: Issued) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "cert": issued.chain_pem, "key": issued.key_pem}


def _ca_row(issued: Issued) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "cert": issued.cert_pem}


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("example.com", ("example.com", "example.com")),
        ("example.com:8443", ("example.com", "example.com")),
        ("127.0.0.1", (None, "127.0.0.1")),
        ("127.0.0.1:8443", (None, "127.0.0.1")),
        ("[::1]:8443", (None, "::1")),
        ("", (None, "")),
    ],
)
def test_peer_names_strip_the_port_and_send_no_sni_for_ip_literals(host: str, expected: tuple[Any, str]) -> None:
    assert peer_names(host) == expected


def test_non_tls_services_have_no_profile(tmp_path: Path) -> None:
    compiler = UpstreamTlsCompiler(_settings(tmp_path), {}, ContextCache())
    assert compiler.profile(_service(protocol="http")) is None


def test_defaults_are_kongs(tmp_path: Path) -> None:
    """Verify off, empty store, depth 1, no client certificate, session reuse on."""
    profile = UpstreamTlsCompiler(_settings(tmp_path), {}, ContextCache()).profile(_service())
    assert profile is not None
    assert (profile.verify, profile.verify_raw, profile.depth, profile.trust_digest) == (False, None, 1, "")
    assert profile.client_cert is None and profile.session_reuse and profile.notices == ()
    assert identity_label(profile.identity) == "-|1||"


def test_client_certificate_precedence(tmp_path: Path, certs: dict[str, Issued]) -> None:
    """Service > the Upstream entity named like the service host > global client_ssl."""
    glob = tmp_path / "global.pem"
    glob.write_text(certs["global"].chain_pem)
    key = tmp_path / "global.key"
    key.write_text(certs["global"].key_pem)
    settings = _settings(tmp_path, client_ssl="on", client_ssl_cert=str(glob), client_ssl_cert_key=str(key))
    one, two = _cert_row(certs["one"]), _cert_row(certs["two"])
    upstream = {"id": str(uuid.uuid4()), "name": "backend.test", "client_certificate": {"id": two["id"]}}
    config = {"certificates": [one, two], "upstreams": [upstream]}
    compiler = UpstreamTlsCompiler(settings, config, ContextCache())

    by_service = compiler.profile(_service(client_certificate={"id": one["id"]}))
    by_upstream = compiler.profile(_service())
    by_global = compiler.profile(_service(host="elsewhere.test"))
    assert by_service and by_upstream and by_global
    assert (by_service.client_cert and by_service.client_cert.source) == "service"
    assert (by_upstream.client_cert and by_upstream.client_cert.source) == "upstream"
    assert (by_global.client_cert and by_global.client_cert.source) == "global"
    assert by_global.client_cert is not None
    assert len(by_global.client_cert.chain) == 2  # leaf + intermediate are sent
    assert len({p.identity for p in (by_service, by_upstream, by_global)}) == 3
    assert len({id(p.context) for p in (by_service, by_upstream, by_global)}) == 3


def test_identity_is_content_based(tmp_path: Path, certs: dict[str, Issued]) -> None:
    """Same content under another id: same identity and context; same id with other content: different."""
    cache = ContextCache()
    ca_a, ca_b = _ca_row(certs["root"]), _ca_row(certs["root"])
    first = UpstreamTlsCompiler(_settings(tmp_path), {"ca_certificates": [ca_a, ca_b]}, cache)
    p1 = first.profile(_service(tls_verify=True, ca_certificates=[ca_a["id"]]))
    p2 = first.profile(_service(tls_verify=True, ca_certificates=[ca_b["id"], ca_a["id"]]))
    assert p1 and p2 and p1.identity == p2.identity and p1.context is p2.context

    edited = {**ca_a, "cert": certs["other"].cert_pem}
    second = UpstreamTlsCompiler(_settings(tmp_path), {"ca_certificates": [edited]}, cache)
    p3 = second.profile(_service(tls_verify=True, ca_certificates=[ca_a["id"]]))
    assert p3 and p3.identity != p1.identity and p3.context is not p1.context


def test_null_and_false_verify_are_distinct_identities(tmp_path: Path) -> None:
    compiler = UpstreamTlsCompiler(_settings(tmp_path), {}, ContextCache())
    null, false, true = (compiler.profile(_service(tls_verify=v)) for v in (None, False, True))
    assert null and false and true
    assert len({null.identity, false.identity, true.identity}) == 3
    assert null.context is false.context is true.context  # verify is applied after the handshake


def test_global_verify_settings_apply_when_the_service_says_nothing(tmp_path: Path, certs: dict[str, Issued]) -> None:
    trusted = tmp_path / "trusted.pem"
    trusted.write_text(certs["root"].cert_pem)
    settings = _settings(
        tmp_path,
        nginx_proxy_proxy_ssl_verify="on",
        nginx_http_proxy_ssl_trusted_certificate=str(trusted),
        proxy_ssl_verify_depth="4",
    )
    compiler = UpstreamTlsCompiler(settings, {}, ContextCache())
    inherited = compiler.profile(_service())
    own = compiler.profile(_service(tls_verify=False, tls_verify_depth=0, ca_certificates=[]))
    assert inherited and own
    assert (inherited.verify, inherited.depth) == (True, 4) and inherited.trust_digest != ""
    assert (own.verify, own.depth, own.trust_digest) == (False, 0, "")  # [] replaces the store with an empty one


def test_missing_ca_is_a_crit_notice_and_leaves_the_store_alone(tmp_path: Path, certs: dict[str, Issued]) -> None:
    ca = _ca_row(certs["root"])
    compiler = UpstreamTlsCompiler(_settings(tmp_path), {"ca_certificates": [ca]}, ContextCache())
    missing = str(uuid.uuid4())
    profile = compiler.profile(_service(tls_verify=True, ca_certificates=[ca["id"], missing]))
    assert profile is not None
    assert profile.notices == (
        ("crit", f"unable to get upstream TLS CA store, err: CA Certificate '{missing}' does not exist"),
    )
    assert profile.trust_digest == ""  # the global (empty) store: verification fails closed
    assert profile.verify


def test_unusable_client_certificate_is_an_error_notice(tmp_path: Path, certs: dict[str, Issued]) -> None:
    bad = {**_cert_row(certs["one"]), "key": certs["two"].key_pem}
    compiler = UpstreamTlsCompiler(_settings(tmp_path), {"certificates": [bad]}, ContextCache())
    profile = compiler.profile(_service(client_certificate={"id": bad["id"]}, tls_verify=True))
    assert profile is not None and profile.client_cert is None and profile.verify
    assert profile.notices == (
        ("error", f"unable to apply upstream client TLS certificate {bad['id']}: certificate does not match key"),
    )


def test_bad_global_files_fail_the_build(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="proxy_ssl_trusted_certificate"):
        UpstreamTlsCompiler(_settings(tmp_path, proxy_ssl_trusted_certificate=str(tmp_path / "none.pem")), {})


def test_context_cache_retains_only_what_the_last_build_used(tmp_path: Path) -> None:
    cache = ContextCache()
    compiler = UpstreamTlsCompiler(_settings(tmp_path), {}, cache)
    compiler.profile(_service(tls_verify_depth=1))
    compiler.profile(_service(tls_verify_depth=2))
    compiler.finish()
    assert len(cache) == 2
    again = UpstreamTlsCompiler(_settings(tmp_path), {}, cache)
    again.profile(_service(tls_verify_depth=2))
    again.finish()
    assert len(cache) == 1


def test_session_cache_is_bounded_and_bound_to_its_context() -> None:
    ctx_a, ctx_b = SSL.Context(SSL.TLS_CLIENT_METHOD), SSL.Context(SSL.TLS_CLIENT_METHOD)
    sessions = SessionCache(max_entries=2)
    s1, s2, s3 = SSL.Session(), SSL.Session(), SSL.Session()
    sessions.put("k1", ctx_a, s1)
    assert sessions.get("k1", ctx_a) is s1
    assert sessions.get("k1", ctx_b) is None  # made with another context: never offered
    sessions.put("k2", ctx_a, s2)
    sessions.put("k3", ctx_a, s3)
    assert len(sessions) == 2 and sessions.get("k1", ctx_a) is None


@pytest.mark.parametrize(
    ("error", "reason", "level", "timeout"),
    [
        (
            TlsHandshakeError("x", kind="verify", verify_code=21, verify_depth=0),
            "upstream SSL certificate verify error: (21:unable to verify the first certificate)",
            "error",
            False,
        ),
        (
            TlsHandshakeError('upstream SSL certificate does not match "a.test"', kind="hostname"),
            'upstream SSL certificate does not match "a.test"',
            "error",
            False,
        ),
        (
            TlsHandshakeError("peer closed connection in SSL handshake", kind="eof"),
            "peer closed connection in SSL handshake",
            "info",
            False,
        ),
        (
            TlsHandshakeError("SSL handshaking to upstream timed out", kind="timeout"),
            "upstream timed out (110: Connection timed out)",
            "error",
            True,
        ),
        (
            TlsHandshakeError("wrong version number"),
            "SSL_do_handshake() failed (SSL: error:SSL routines::wrong version number)",
            "error",
            False,
        ),
    ],
)
def test_failures_read_like_nginx(error: TlsHandshakeError, reason: str, level: str, timeout: bool) -> None:
    failure = describe_handshake_error(error)
    assert (failure.reason, failure.level, failure.timeout) == (reason, level, timeout)
