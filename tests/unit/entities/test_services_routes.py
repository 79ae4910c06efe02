"""Services (url shorthand, upstream TLS conditionals) and routes (subschemas, snis rule) at schema level."""

from __future__ import annotations

import pytest

from gateway.entities import SCHEMAS
from gateway.entities.errors import EntityError, schema_violation
from gateway.entities.services import parse_url

SERVICES = SCHEMAS["services"]
ROUTES = SCHEMAS["routes"]


def check(schema, data: dict) -> dict:
    return schema.validate(schema.process_auto_fields(data, "insert"))


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://example.com", {"protocol": "http", "host": "example.com", "port": 80, "path": None}),
        ("https://example.com", {"protocol": "https", "host": "example.com", "port": 443, "path": None}),
        (
            "https://example.com:8443/a/b?q=1#f",
            {"protocol": "https", "host": "example.com", "port": 8443, "path": "/a/b"},
        ),
        ("//example.com:443", {"protocol": "https", "host": "example.com", "port": 443, "path": None}),
        ("//example.com:80/x", {"protocol": "http", "host": "example.com", "port": 80, "path": "/x"}),
        ("//example.com:8080", {"protocol": "http", "host": "example.com", "port": 8080, "path": None}),
        ("tls://[::1]:9000", {"protocol": "tls", "host": "::1", "port": 9000, "path": None}),
    ],
)
def test_url_shorthand(url: str, expected: dict) -> None:
    row = SERVICES.process_auto_fields({"url": url}, "insert")
    assert "url" not in row
    assert {k: row[k] for k in expected} == expected


def test_invalid_url_message() -> None:
    errors = check(SERVICES, {"url": "invalid url"})
    assert schema_violation(errors).message == (
        "2 schema violations (host: required field missing; path: should start with: /)"
    )


def test_url_must_be_a_string() -> None:
    with pytest.raises(EntityError) as info:
        SERVICES.process_auto_fields({"url": 1}, "insert")
    assert info.value.fields == {"url": "expected a string"}


def test_parse_url_userinfo_and_no_authority() -> None:
    assert parse_url("http://u:p@h.test:1/p") == {"scheme": "http", "path": "/p", "port": "1", "host": "h.test"}
    assert parse_url("invalid url") == {"path": "invalid url"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("client_certificate", {"id": "4e3ad2e4-0bc4-4638-8e34-c84a417ba39b"}),
        ("tls_verify", True),
        ("tls_verify_depth", 1),
        ("ca_certificates", ["4e3ad2e4-0bc4-4638-8e34-c84a417ba39b"]),
    ],
)
def test_tls_fields_only_with_https_tls_or_grpcs(field: str, value: object) -> None:
    errors = check(SERVICES, {"host": "example.com", "protocol": "http", field: value})
    err = schema_violation(errors)
    assert err.message == (
        "2 schema violations (failed conditional validation given value of field 'protocol'; "
        f"{field}: value must be null)"
    )
    assert err.fields == {
        "@entity": ["failed conditional validation given value of field 'protocol'"],
        field: "value must be null",
    }
    assert check(SERVICES, {"host": "example.com", "protocol": "https", field: value}) == {}
    assert check(SERVICES, {"host": "example.com", "protocol": "tls", field: value}) == {}
    # Kong refuses them on grpcs too; this gateway applies them to its TLS-with-ALPN-h2 connections (compatibility.md)
    assert check(SERVICES, {"host": "example.com", "protocol": "grpcs", field: value}) == {}
    assert check(SERVICES, {"host": "example.com", "protocol": "grpc", field: value})[field] == "value must be null"


def test_service_defaults_and_ranges() -> None:
    row = SERVICES.complete(SERVICES.process_auto_fields({"host": "a.test"}, "insert"))
    assert (row["protocol"], row["port"], row["retries"], row["connect_timeout"], row["enabled"]) == (
        "http",
        80,
        5,
        60000,
        True,
    )
    assert check(SERVICES, {"host": "a.test", "protocol": "https", "tls_verify_depth": 65}) == {
        "tls_verify_depth": "value should be between 0 and 64"
    }
    assert check(SERVICES, {"host": "a.test", "connect_timeout": 0}) == {
        "connect_timeout": "value should be between 1 and 2147483646"
    }
    assert check(SERVICES, {"host": "a.test", "protocol": "tcp", "path": "/x"})["path"] == "value must be null"


def test_route_defaults() -> None:
    row = ROUTES.complete(ROUTES.process_auto_fields({"paths": ["/"]}, "insert"))
    assert row["protocols"] == ["http", "https"]
    assert row["strip_path"] is True and row["preserve_host"] is False
    assert row["regex_priority"] == 0 and row["path_handling"] == "v0"
    assert row["https_redirect_status_code"] == 426
    assert row["request_buffering"] is True and row["response_buffering"] is True
    assert row["sources"] is None and row["destinations"] is None


def test_route_snis_need_a_tls_protocol() -> None:
    errors = check(ROUTES, {"protocols": ["http"], "snis": ["a.test"], "paths": ["/"]})
    assert errors == {
        "@entity": ["'snis' can only be set when 'protocols' is 'grpcs', 'https', 'tls' or 'tls_passthrough'"],
        "snis": "length must be 0",
    }
    assert check(ROUTES, {"protocols": ["https"], "snis": ["*.a.test", "b.*"]}) == {}


def test_route_update_to_http_gives_three_violations() -> None:
    """Case 84: a route with snis updated to protocols={http} with its other criteria cleared."""
    merged = {
        **ROUTES.process_auto_fields({"hosts": ["example.com"], "methods": ["GET"], "snis": ["example.org"]}, "insert"),
        "protocols": ["http"],
        "hosts": None,
        "methods": None,
    }
    err = schema_violation(ROUTES.validate(merged, full_check=False, updating=True))
    assert err.message == (
        "3 schema violations ('snis' can only be set when 'protocols' is 'grpcs', 'https', 'tls' or "
        "'tls_passthrough'; must set one of 'methods', 'hosts', 'headers', 'paths' when 'protocols' is 'http'; "
        "snis: length must be 0)"
    )


def test_http_route_needs_a_criterion() -> None:
    assert check(ROUTES, {"protocols": ["http"]}) == {
        "@entity": ["must set one of 'methods', 'hosts', 'headers', 'paths' when 'protocols' is 'http'"]
    }
    assert check(ROUTES, {}) == {
        "@entity": ["must set one of 'methods', 'hosts', 'headers', 'paths', 'snis' when 'protocols' is 'https'"]
    }


def test_route_field_rules() -> None:
    errors = check(
        ROUTES,
        {
            "hosts": ["*.a.*", "a.*.b", "ok.test"],
            "methods": ["get"],
            "headers": {"Host": ["x"]},
            "https_redirect_status_code": 303,
            "protocols": ["http", "tcp"],
        },
    )
    assert errors["hosts"] == [
        "invalid wildcard: must have at most one wildcard",
        "invalid wildcard: must be placed at leftmost or rightmost label",
    ]
    assert errors["methods"] == ["invalid value: get"]
    assert errors["headers"] == "cannot contain 'host' header, which must be specified in the 'hosts' attribute"
    assert errors["https_redirect_status_code"] == "expected one of: 426, 301, 302, 307, 308"
    assert errors["protocols"] == "these sets are mutually exclusive: ('http', 'https'), ('tcp', 'tls', 'udp')"


def test_stream_and_grpc_subschemas() -> None:
    assert check(ROUTES, {"protocols": ["tcp"], "paths": ["/"], "sources": [{"ip": "10.0.0.0/8"}]}) == {
        "paths": "cannot set 'paths' when 'protocols' is 'tcp', 'tls', 'tls_passthrough' or 'udp'"
    }
    assert check(ROUTES, {"protocols": ["tls_passthrough"]}) == {
        "@entity": ["must set snis when 'protocols' is 'tls_passthrough'"]
    }
    row = ROUTES.process_auto_fields({"protocols": ["grpc"], "paths": ["/"]}, "insert")
    assert row["strip_path"] is False and ROUTES.validate(row) == {}
    assert check(ROUTES, {"protocols": ["http"], "paths": ["/"], "sources": [{"ip": "1.1.1.1"}]}) == {
        "sources": "cannot set 'sources' when 'protocols' is 'http' or 'https'"
    }
    assert check(ROUTES, {"protocols": ["tcp"], "sources": [{}]}) == {
        "sources": [{"@entity": ["at least one of these fields must be non-empty: 'ip', 'port'"]}]
    }


@pytest.mark.parametrize("protocol", ["grpc", "grpcs"])
def test_grpc_services_take_kongs_defaults(protocol: str) -> None:
    # Kong's schema: the port defaults to 80 whatever the protocol, the url shorthand knows only http/https ports,
    # and a gRPC service has no path
    row = SERVICES.complete(SERVICES.process_auto_fields({"host": "g.test", "protocol": protocol}, "insert"))
    assert (row["protocol"], row["port"], row["path"]) == (protocol, 80, None)
    assert SERVICES.validate(row) == {}
    assert check(SERVICES, {"url": f"{protocol}://g.test"}) == {}
    assert SERVICES.process_auto_fields({"url": f"{protocol}://g.test"}, "insert")["port"] == 80
    assert check(SERVICES, {"host": "g.test", "protocol": protocol, "path": "/x"})["path"] == "value must be null"
