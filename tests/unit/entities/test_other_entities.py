"""Upstreams, targets, consumers, plugins, certificates and CA certificates at schema level."""

from __future__ import annotations

import pytest

from gateway.entities import SCHEMAS, upstreams
from gateway.entities.forms import coerce_form
from gateway.entities.plugin_configs import enable_plugins, enabled_plugins, registered_plugins
from gateway.entities.targets import format_target
from tests.fixtures.certs import days, make_ca, make_cert


def check(entity: str, data: dict) -> dict:
    schema = SCHEMAS[entity]
    return schema.validate(schema.process_auto_fields(data, "insert"))


def test_upstream_healthcheck_defaults() -> None:
    schema = SCHEMAS["upstreams"]
    row = schema.complete(schema.process_auto_fields({"name": "up.test"}, "insert"))
    hc = row["healthchecks"]
    assert hc == upstreams.HEALTHCHECKS_DEFAULTS
    assert hc["active"]["https_verify_certificate"] is True
    assert hc["active"]["https_sni"] is None and hc["active"]["http_path"] == "/"
    assert hc["active"]["unhealthy"]["http_statuses"] == [429, 404, 500, 501, 502, 503, 504, 505]
    assert hc["passive"]["unhealthy"]["http_statuses"] == [429, 500, 503]
    assert hc["threshold"] == 0 and row["slots"] == 10000 and row["algorithm"] == "round-robin"


def test_upstream_partial_healthchecks_get_nested_defaults() -> None:
    schema = SCHEMAS["upstreams"]
    row = schema.process_auto_fields({"name": "up.test", "healthchecks": {"active": {"timeout": 5}}}, "insert")
    assert row["healthchecks"]["active"]["timeout"] == 5
    assert row["healthchecks"]["active"]["concurrency"] == 10
    assert row["healthchecks"]["passive"]["type"] == "http"
    assert schema.validate(row) == {}


def test_upstream_rules() -> None:
    assert check("upstreams", {"name": "10.0.0.1"}) == {"name": "Invalid name ('10.0.0.1'); no ip addresses allowed"}
    assert check("upstreams", {"name": "a.test:80"}) == {"name": "Invalid name ('a.test:80'); no port allowed"}
    assert check("upstreams", {"name": "a.test", "hash_on": "header"}) == {
        "hash_on_header": "required field missing",
        "@entity": ["failed conditional validation given value of field 'hash_on'"],
    }
    schema = SCHEMAS["upstreams"]
    assert schema.process_auto_fields({"name": "a", "hash_on": "ip"}, "insert")["algorithm"] == "consistent-hashing"
    assert schema.process_auto_fields({"name": "a", "algorithm": "latency"}, "insert")["hash_on"] == "none"


def test_targets() -> None:
    assert format_target("10.0.0.1") == ("10.0.0.1:8000", None)
    assert format_target("example.com:81") == ("example.com:81", None)
    assert format_target("::1") == ("[0000:0000:0000:0000:0000:0000:0000:0001]:8000", None)
    assert format_target("bad host") == (None, "Invalid target; not a valid hostname or ip address")
    row = SCHEMAS["targets"].process_auto_fields({"target": "a:1"}, "insert")
    assert row["weight"] == 100 and isinstance(row["created_at"], float)
    assert check("targets", {"target": "a:1", "weight": 70000, "upstream": {"id": row["id"]}}) == {
        "weight": "value should be between 0 and 65535"
    }


def test_consumers_need_username_or_custom_id() -> None:
    assert check("consumers", {}) == {
        "@entity": ["at least one of these fields must be non-empty: 'custom_id', 'username'"]
    }
    assert check("consumers", {"custom_id": "c"}) == {}


NOT_ENABLED = (
    "plugin '{}' not enabled; add it to the 'plugins' configuration property "
    "(this gateway runs only acl, mtls-auth, prometheus, tls-metadata-headers)"
)


def test_a_plugin_this_gateway_does_not_run_is_refused_with_kongs_message() -> None:
    for name in ("cors", "key-auth", "acme", "rate-limiting", "whatever"):
        assert check("plugins", {"name": name, "config": {"anything": [1, 2]}}) == {"name": NOT_ENABLED.format(name)}
    # a list as the subschema key shows its first element, as Kong's ``key[1]``
    assert check("plugins", {"name": ["key-auth"]}) == {"name": NOT_ENABLED.format("key-auth")}
    assert check("plugins", {}) == {"name": "required field missing"}


def test_the_plugins_setting_narrows_what_may_be_configured() -> None:
    try:
        enable_plugins(["mtls-auth"])
        assert enabled_plugins() == ["mtls-auth"]
        disabled = "tls-metadata-headers"
        assert check("plugins", {"name": disabled}) == {"name": NOT_ENABLED.format(disabled)}
        assert check("plugins", {"name": "mtls-auth", "config": {"ca_certificates": []}}) == {}
        enable_plugins([])
        assert check("plugins", {"name": "mtls-auth", "config": {"ca_certificates": []}}) == {
            "name": NOT_ENABLED.format("mtls-auth")
        }
        with pytest.raises(ValueError, match="plugins not available in this gateway: key-auth"):
            enable_plugins(["key-auth", "mtls-auth"])
    finally:
        enable_plugins(None)
    assert enabled_plugins() == registered_plugins() == ["acl", "mtls-auth", "prometheus", "tls-metadata-headers"]


def test_plugins_known() -> None:
    errors = check("plugins", {"name": "mtls-auth", "config": {}})
    assert errors == {"config": {"ca_certificates": "required field missing"}}
    schema = SCHEMAS["plugins"]
    row = schema.process_auto_fields({"name": "mtls-auth", "config": {"ca_certificates": []}}, "insert")
    assert row["config"]["consumer_by"] == ["username", "custom_id"]
    assert row["config"]["revocation_check_mode"] == "IGNORE_CA_ERROR"
    assert row["config"]["cache_ttl"] == 60 and row["protocols"] == ["grpc", "grpcs", "http", "https"]
    assert check("plugins", {"name": "mtls-auth", "config": {"ca_certificates": ["nope"]}}) == {
        "config": {"ca_certificates": ["expected a valid UUID"]}
    }


def test_mtls_auth_fields_this_gateway_would_ignore_are_refused() -> None:
    """``https_proxy_*`` (OCSP and CRLs are fetched over http only) and ``san_dirname_matcher`` (not matched) are
    accepted only unset; ``http_proxy_*`` is honoured."""
    base: dict[str, list[str]] = {"ca_certificates": []}
    errors = check("plugins", {"name": "mtls-auth", "config": {**base, "https_proxy_host": "p.test"}})
    assert errors == {
        "config": {
            "https_proxy_host": "not supported by this gateway (OCSP responders and CRLs are fetched over plain http "
            "only, so an https proxy would never be used); leave it unset"
        }
    }
    assert set(check("plugins", {"name": "mtls-auth", "config": {**base, "https_proxy_port": 3128}})["config"]) == {
        "https_proxy_port"
    }
    assert check("plugins", {"name": "mtls-auth", "config": {**base, "san_dirname_matcher": ["CN=x"]}}) == {
        "config": {
            "san_dirname_matcher": "not supported by this gateway (directory names in the SAN are not matched); "
            "leave it unset"
        }
    }
    honoured = {**base, "http_proxy_host": "p.test", "http_proxy_port": 3128, "san_dirname_matcher": []}
    assert check("plugins", {"name": "mtls-auth", "config": honoured}) == {}


@pytest.fixture(scope="module")
def pki() -> dict:
    root = make_ca("Root")
    return {
        "root": root,
        "rsa": make_cert("rsa.test", issuer=root),
        "ec": make_cert("ec.test", issuer=root, key_type="ec"),
        "rsa2": make_cert("rsa2.test", issuer=root),
    }


def test_certificate_pairs(pki: dict) -> None:
    rsa, ec, rsa2 = pki["rsa"], pki["ec"], pki["rsa2"]
    assert check("certificates", {"cert": rsa.cert_pem, "key": rsa.key_pem}) == {}
    assert check("certificates", {"cert": rsa.cert_pem, "key": rsa2.key_pem}) == {
        "@entity": ["certificate does not match key"]
    }
    assert (
        check(
            "certificates", {"cert": rsa.cert_pem, "key": rsa.key_pem, "cert_alt": ec.cert_pem, "key_alt": ec.key_pem}
        )
        == {}
    )
    assert check("certificates", {"cert": rsa.cert_pem, "key": rsa.key_pem, "cert_alt": ec.cert_pem}) == {
        "@entity": ["all or none of these fields must be set: 'cert_alt', 'key_alt'"]
    }
    assert check(
        "certificates", {"cert": rsa.cert_pem, "key": rsa.key_pem, "cert_alt": ec.cert_pem, "key_alt": rsa.key_pem}
    )["@entity"] == ["alternative certificate does not match key"]
    same = check(
        "certificates", {"cert": rsa.cert_pem, "key": rsa.key_pem, "cert_alt": rsa2.cert_pem, "key_alt": rsa2.key_pem}
    )
    assert same == {
        "@entity": [
            "certificate and alternative certificate need to have different type (e.g. RSA "
            "and ECDSA), the provided certificates were both of the same type"
        ]
    }
    bad = check("certificates", {"cert": "nope", "key": rsa.key_pem})
    assert bad["cert"].startswith("invalid certificate: x509.new: ") and "@entity" not in bad


def test_ca_certificate_checks_in_order(pki: dict) -> None:
    root = pki["root"]
    assert check("ca_certificates", {"cert": root.cert_pem}) == {}
    two = check("ca_certificates", {"cert": root.cert_pem + pki["rsa"].cert_pem})
    assert two == {"@entity": ["please submit only one certificate at a time"]}
    expired = make_ca("Old", not_before=days(-30), not_after=days(-1))
    assert check("ca_certificates", {"cert": expired.cert_pem}) == {
        "@entity": ['certificate expired, "Not After" time is in the past']
    }
    assert check("ca_certificates", {"cert": pki["rsa"].cert_pem}) == {
        "@entity": ['certificate does not appear to be a CA because it is missing the "CA" basic constraint']
    }


def test_coerce_form() -> None:
    form = {
        "name": "s",
        "port": "8443",
        "retries": "x",
        "protocol": "https",
        "tls_verify": "true",
        "tls_verify_depth": "2",
        "ca_certificates": "4e3ad2e4-0bc4-4638-8e34-c84a417ba39b",
        "client_certificate": {"id": "4e3ad2e4-0bc4-4638-8e34-c84a417ba39b"},
        "path": "",
        "tags": ["a"],
    }
    out = coerce_form("services", form)
    assert out["port"] == 8443 and out["retries"] == "x" and out["tls_verify"] is True
    assert out["tls_verify_depth"] == 2 and out["ca_certificates"] == ["4e3ad2e4-0bc4-4638-8e34-c84a417ba39b"]
    assert out["path"] is None and out["client_certificate"] == {"id": "4e3ad2e4-0bc4-4638-8e34-c84a417ba39b"}
    plugin = coerce_form(
        "plugins",
        {
            "name": "mtls-auth",
            "config": {"ca_certificates": {"1": "b", "2": "a"}, "cache_ttl": "1.5", "skip_consumer_lookup": "false"},
        },
    )
    assert plugin["config"] == {"ca_certificates": ["b", "a"], "cache_ttl": 1.5, "skip_consumer_lookup": False}
    assert coerce_form("certificates", {"snis": "a.test"})["snis"] == ["a.test"]
    route = coerce_form(
        "routes",
        {"protocols": "http", "https_redirect_status_code": "301", "strip_path": "maybe", "headers": {"x-a": "1"}},
    )
    assert route == {
        "protocols": ["http"],
        "https_redirect_status_code": 301,
        "strip_path": "maybe",
        "headers": {"x-a": ["1"]},
    }
    assert coerce_form("upstreams", {"healthchecks": {"active": {"timeout": "3"}}})["healthchecks"] == {
        "active": {"timeout": 3}
    }
