"""Stream routes: Kong's per-protocol rules (routes_subschemas.lua), and ``udp`` refused because nothing serves it."""

from __future__ import annotations

from typing import Any

from gateway.entities import SCHEMAS
from gateway.entities.routes import UDP_REFUSED

ROUTES = SCHEMAS["routes"]


def check(data: dict[str, Any]) -> dict[str, Any]:
    row = ROUTES.process_auto_fields(data, "insert")
    return ROUTES.validate(row)


def test_the_stream_protocols_kong_serves_are_accepted() -> None:
    assert check({"protocols": ["tcp"], "destinations": [{"port": 9000}]}) == {}
    assert check({"protocols": ["tls"], "snis": ["*.a.test"], "sources": [{"ip": "10.0.0.0/8"}]}) == {}
    assert check({"protocols": ["tcp", "tls"], "destinations": [{"ip": "127.0.0.1", "port": 1}]}) == {}
    assert check({"protocols": ["tls_passthrough"], "snis": ["b.test"]}) == {}


def test_kongs_rules_per_stream_protocol() -> None:
    assert check({"protocols": ["tls_passthrough"], "destinations": [{"port": 1}]}) == {
        "@entity": ["must set snis when 'protocols' is 'tls_passthrough'"]
    }
    assert check({"protocols": ["tcp"]}) == {
        "@entity": ["must set one of 'sources', 'destinations', 'snis' when 'protocols' is 'tcp', 'tls' or 'udp'"]
    }
    errors = check({"protocols": ["tcp"], "snis": ["a.test"]})
    assert errors["@entity"] == [
        "'snis' can only be set when 'protocols' is 'grpcs', 'https', 'tls' or 'tls_passthrough'"
    ]
    assert check({"protocols": ["tls", "tls_passthrough"], "snis": ["a.test"]}) == {
        "protocols": "these sets are mutually exclusive: ('tcp', 'tls', 'udp'), ('tls_passthrough')"
    }


def test_udp_is_refused_clearly() -> None:
    assert check({"protocols": ["udp"], "destinations": [{"port": 53}]}) == {"@entity": [UDP_REFUSED]}
    assert check({"protocols": ["tcp", "udp"], "destinations": [{"port": 53}]}) == {"@entity": [UDP_REFUSED]}
    assert "udp" in UDP_REFUSED and "not supported" in UDP_REFUSED
