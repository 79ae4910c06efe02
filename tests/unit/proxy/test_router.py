"""Router precedence and path helpers, re-expressed from Kong's spec/01-unit/08-router_spec.lua."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.proxy.matchers import route_priority, split_host_port
from gateway.proxy.router import Router, escape_path, header_map, normalize_path, upstream_uri_v0


def _r(rid: str, **fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"id": f"e8fb37f1-102d-461e-9c51-6608a6bb81{rid}", "protocols": ["http", "https"]}
    row.update(fields)
    return row


USE_CASE = [
    _r("01", hosts=["domain-1.org", "domain-2.org"]),
    _r("02", methods=["TRACE"]),
    _r("03", paths=["/my-route"]),
    _r("04", paths=["/route-4"], hosts=["domain-1.org", "domain-2.org"]),
    _r("05", hosts=["domain-1.org", "domain-2.org"], methods=["POST", "PUT", "PATCH"]),
    _r("06", methods=["POST", "PUT", "PATCH"], paths=["/route-6"]),
    _r("07", hosts=["domain-with-uri-1.org"], methods=["POST", "PUT", "PATCH"], paths=["/my-route-uri"]),
    _r("09", headers={"location": ["my-location-1", "my-location-2"]}),
    _r("10", headers={"location": ["my-location-1"], "version": ["v1", "v2"]}),
    _r("13", hosts=["domain-1.org:321", "domain-2.org"]),
    _r("14", hosts=["domain-3.org:321"]),
    _r("15", headers={"user_agent": ["~*windows|linux|os\\s+x\\s*[\\d\\._]+|solaris|bsd"]}),
]


@pytest.fixture(scope="module")
def router() -> Router:
    return Router((row, object()) for row in USE_CASE)


def _match(
    router: Router, method: str, path: str, host: str | None, headers: dict[str, str] | None = None, port: int = 80
) -> str | None:
    hm = header_map(headers.items()) if headers else None
    m = router.match(method, path, host, port, headers=hm)
    return m.route.id[-2:] if m else None


@pytest.mark.parametrize(
    ("method", "path", "host", "headers", "expected"),
    [
        ("GET", "/", "domain-1.org", None, "01"),
        ("GET", "/", "domain-1.org:80", None, "01"),  # any port matches a port-less host
        ("GET", "/", "domain-1.org:321", None, "13"),  # port-specific entry, higher uuid on equal priority
        ("GET", "/", "domain-3.org:321", None, "14"),
        ("GET", "/", "domain-3.org:123", None, None),
        ("TRACE", "/", None, None, "02"),
        ("GET", "/my-route", "x", None, "03"),
        ("GET", "/route-4", "domain-1.org", None, "04"),  # host + uri beats host
        ("POST", "/", "domain-1.org", None, "05"),
        ("PUT", "/route-6", None, None, "06"),
        ("POST", "/my-route-uri", "domain-with-uri-1.org", None, "07"),
        ("GET", "/", None, {"location": "my-location-2"}, "09"),
        ("GET", "/", None, {"Location": "MY-LOCATION-1", "Version": "v2"}, "10"),  # more headers first
        ("GET", "/", None, {"User-Agent": "Mozilla (Linux)"}, "15"),
        ("GET", "/nothing", "nowhere", None, None),
    ],
)
def test_kong_use_case(
    router: Router, method: str, path: str, host: str | None, headers: dict[str, str] | None, expected: str | None
) -> None:
    assert _match(router, method, path, host, headers) == expected


def test_longer_prefix_wins_and_regex_priority() -> None:
    router = Router(
        (row, None)
        for row in [
            _r("01", paths=["/my-route"]),
            _r("02", paths=["/my-route/hello"]),
            _r("03", paths=[r"~/my-route/\d+$"], regex_priority=5),
            _r("04", paths=[r"~/my-route/(?<num>\d+)"], regex_priority=1),
            _r("05", paths=["/"]),
        ]
    )
    assert _match(router, "GET", "/my-route/hello/x", None) == "02"
    assert _match(router, "GET", "/my-route/other", None) == "01"
    assert _match(router, "GET", "/my-route/123", None) == "03"  # regex beats any prefix; priority 5 > 1
    m = router.match("GET", "/my-route/42/x", None, 80)
    assert m is not None and m.route.id.endswith("04")
    assert m.captures == {"0": "/my-route/42", "1": "42", "num": "42"}
    assert m.prefix == "/my-route/42"  # strip_path default: the matched part
    assert _match(router, "GET", "/zzz", None) == "05"


def test_plain_host_beats_wildcard_and_wildcard_forms() -> None:
    router = Router(
        (row, None)
        for row in [
            _r("01", hosts=["*.route.com"]),
            _r("02", hosts=["route.*"]),
            _r("03", hosts=["plain.route.com"]),
        ]
    )
    assert _match(router, "GET", "/", "plain.route.com") == "03"
    assert _match(router, "GET", "/", "a.b.route.com") == "01"  # suffix match spans labels (ATC)
    assert _match(router, "GET", "/", "route.org") == "02"
    assert _match(router, "GET", "/", "PLAIN.ROUTE.COM") is None  # case-sensitive like the ATC router


def test_method_does_not_supersede_prefix_or_host() -> None:
    router = Router(
        (row, None)
        for row in [
            _r("01", methods=["GET"]),
            _r("02", paths=["/foo"]),
            _r("03", hosts=["h.test"]),
        ]
    )
    # equal weight (one field each): plain host bit wins over path, path length breaks the tie with methods
    assert _match(router, "GET", "/foo", "h.test") == "03"
    assert _match(router, "GET", "/foo", "x") == "02"
    assert _match(router, "GET", "/bar", "x") == "01"


def test_split_routes_by_path_group_priority() -> None:
    row = _r("01", paths=["/a", "/long-path", r"~/re/\d+"])
    router = Router([(row, None), (_r("02", paths=["/long"]), None)])
    assert _match(router, "GET", "/long-path/x", None) == "01"
    assert _match(router, "GET", "/longer", None) == "02"
    assert _match(router, "GET", "/re/1", None) == "01"
    assert _match(router, "GET", "/a/b", None) == "01"
    assert route_priority(row, ["/long-path"]) > route_priority(row, ["/a"])


def test_snis_only_apply_to_https() -> None:
    router = Router([(_r("01", protocols=["https"], snis=["*.sni.test"], paths=["/"]), None)])
    assert router.match("GET", "/", "x", 80, https=False) is not None  # plain HTTP: route found, then 426
    assert router.match("GET", "/", "x", 443, https=True, sni="a.sni.test") is not None
    assert router.match("GET", "/", "x", 443, https=True, sni="other.test") is None


@pytest.mark.parametrize(
    ("service_path", "route_path", "strip", "req", "expected"),
    [
        ("/", "/", True, "/", "/"),
        ("/", "/", True, "/foo/bar", "/foo/bar"),
        ("/", "/foo", True, "/foo/bar", "/bar"),
        ("/", "/foo", True, "/foo", "/"),
        ("/", "/foo", False, "/foo/bar", "/foo/bar"),
        ("/svc", "/foo", True, "/foo", "/svc"),
        ("/svc", "/foo", True, "/foo/", "/svc/"),
        ("/svc", "/foo", True, "/foo/bar", "/svc/bar"),
        ("/svc", "/foo", True, "/foobar", "/svc/bar"),
        ("/svc/", "/foo", True, "/foo", "/svc"),
        ("/svc/", "/foo", True, "/foo/", "/svc/"),
        ("/svc/", "/foo", True, "/foo/bar", "/svc/bar"),
        ("/svc/", "/foo", False, "/foo/bar", "/svc/foo/bar"),
        ("/svc", "/foo", False, "/foo/bar", "/svc/foo/bar"),
        ("/svc", "/", False, "/", "/svc"),
    ],
)
def test_upstream_uri_v0(service_path: str, route_path: str, strip: bool, req: str, expected: str) -> None:
    assert upstream_uri_v0(strip, route_path if strip else None, req, service_path) == expected


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("/", "/"),
        ("/a/./b/../c", "/a/c"),
        ("//a///b", "/a/b"),
        ("/%41%2Fb", "/A%2Fb"),
        ("/reg%65x/1", "/regex/1"),
        ("/../x", "/x"),
    ],
)
def test_normalize_path(raw: str, normalized: str) -> None:
    assert normalize_path(raw) == normalized


def test_escape_and_split_host_port() -> None:
    assert escape_path('/a b/"c"') == "/a%20b/%22c%22"
    assert escape_path("/ok-_.~!$&'()*+,;=:@%2F") == "/ok-_.~!$&'()*+,;=:@%2F"
    assert split_host_port("example.com:8000") == ("example.com", 8000)
    assert split_host_port("example.com") == ("example.com", None)
    assert split_host_port("[::1]:80") == ("[::1]:80", None)


def test_match_cache_returns_the_same_answer_per_key() -> None:
    router = Router([(_r("01", paths=["/a"]), None), (_r("02", paths=["/b"], hosts=["x.test"]), None)])
    first = router.match("GET", "/a/1", "h.test", 8000)
    assert first is not None and first is router.match("GET", "/a/1", "h.test", 8000)
    assert router.match("GET", "/a/1", "h.test", 8000, https=True) is not first  # scheme is part of the key
    assert router.match("GET", "/b", "h.test", 8000) is None  # a miss is cached as a miss
    assert router.match("GET", "/b", "h.test", 8000) is None
    found = router.match("GET", "/b", "x.test:8000", 8000)
    assert found is not None and found.route.id.endswith("02")


def test_the_last_answer_is_reused_only_for_an_equal_request() -> None:
    router = Router([(_r("01", paths=["/a"]), None), (_r("02", paths=["/b"]), None)])
    a = router.match("GET", "/a", "h.test", 8000)
    b = router.match("GET", "/b", "h.test", 8000)
    assert a is not None and b is not None and a is not b
    path = "".join(["/", "b"])  # equal to the last path, another object (as each request's decoded path is)
    assert router.match("GET", path, "h.test", 8000) is b
    assert router.match("GET", "/a", "h.test", 8000) is a  # the key before the last: from the cache
    assert router.match("POST", "/a", "h.test", 8000) is not a  # one element differs: not the last answer
    assert router.match("GET", "/a", "h.test", 8000, sni="s.test") is not a
    assert router.match("GET", "/c", "h.test", 8000) is None  # a miss is the last answer too
    assert router.match("GET", "/c", "h.test", 8000) is None
    assert router.match("GET", "/a", "h.test", 8000) is a


def test_match_cache_is_bounded_and_skipped_for_header_routes(monkeypatch: pytest.MonkeyPatch) -> None:
    import gateway.proxy.router as router_module

    monkeypatch.setattr(router_module, "MATCH_CACHE_SIZE", 2)
    router = Router([(_r("01", paths=["/"]), None)])
    kept = router.match("GET", "/1", None, 80)
    router.match("GET", "/2", None, 80)
    router.match("GET", "/3", None, 80)  # full: emptied, then this answer stored
    assert router.match("GET", "/1", None, 80) is not kept
    with_headers = Router([(_r("01", paths=["/"], headers={"x-v": ["1"]}), None)])
    assert with_headers.uses_headers
    one = with_headers.match("GET", "/", None, 80, headers={"x_v": ["1"]})
    assert one is not None
    assert with_headers.match("GET", "/", None, 80, headers={"x_v": ["2"]}) is None
