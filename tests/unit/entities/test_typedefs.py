"""Reusable typedefs: Kong's accept/reject lists (reference 1.2, case 95 and case 41's reasons)."""

from __future__ import annotations

import pytest

from gateway.entities import net, typedefs


@pytest.mark.parametrize(
    "name",
    [
        "*",
        "*.wildcard.com",
        "*.test.wildcard.com",
        "wildcard.*",
        "test.wildcard.*",
        "foo.test.wildcard.*",
        "*example.com",
        "example.com",
        "example.com.",
        "Example.COM",
        "a_b.test",
    ],
)
def test_wildcard_host_accepts(name: str) -> None:
    assert typedefs.validate_wildcard_host(name) is None


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("foo.*.com", "wildcard must be leftmost or rightmost character"),
        ("a.exam*le.com", "wildcard must be leftmost or rightmost character"),
        ("*.example.*", "only one wildcard must be specified"),
        ("*.*.wildcard.*", "only one wildcard must be specified"),
        ("*.exam*le.com", "only one wildcard must be specified"),
        ("example^com", "invalid value: example^com"),
        ("256.256.256.256", "invalid value: 256.256.256.256"),
        ("127.0.0.1", "must not be an IP"),
        ("127.0.0.1:443", "must not be an IP"),
        ("::1", "must not be an IP"),
        ("[::1]:443", "must not be an IP"),
        ("valid.name:8000", "must not have a port"),
        ("a.example.com:600", "must not have a port"),
        ("a.example.com:88888", "must not have a port"),
        (".example.com", "invalid value: .example.com"),
        ("a-.example.com", "invalid value: a-.example.com"),
    ],
)
def test_wildcard_host_rejects(name: str, message: str) -> None:
    assert typedefs.validate_wildcard_host(name) == message


def test_host_rules() -> None:
    assert typedefs.validate_host("example.com") is None
    assert typedefs.validate_host("10.0.0.1") is None
    assert typedefs.validate_host("example.com:80") == "must not have a port"
    assert typedefs.validate_host("exa mple") == "invalid value: exa mple"


def test_router_paths() -> None:
    assert typedefs.validate_router_path("/a/b") is None
    assert typedefs.validate_router_path("/a/./b") == "non-normalized path, consider use '/a/b' instead"
    assert typedefs.validate_router_path("/a%zz") == "invalid url-encoded value: '%zz'"
    assert typedefs.validate_router_path("~/items/(?<id>\\d+)") is None  # PCRE named group
    err = typedefs.validate_router_path("~/(a")
    assert err is not None and err.startswith("invalid regex: '/(a' (PCRE returned: ")


def test_names_and_tags() -> None:
    assert typedefs.validate_utf8_name("café-1") is None
    assert typedefs.validate_utf8_name("a b") == (
        "invalid value 'a b': the only accepted ascii characters are alphanumerics or ., -, _, and ~"
    )
    assert typedefs.validate_tag("ok tag!") is None
    assert typedefs.validate_tag("a,b") is not None and typedefs.validate_tag("a/b") is not None


def test_normalize_path_and_ip_helpers() -> None:
    assert net.normalize_path("/a/../b/%41%2F", True) == "/b/A%2F"
    assert net.is_valid_ip_or_cidr("10.0.0.0/8") and net.is_valid_ip_or_cidr("::1")
    assert not net.is_valid_ip_or_cidr("10.0.0.0/33")
    info, err = net.normalize_ip("[::1]:8080")
    assert err is None and info is not None and info.port == 8080 and info.type == "ipv6"
