"""The stream router: Kong's stream expression (what is a condition and what is not) and its priorities."""

from __future__ import annotations

import io
import uuid
from typing import Any

from gateway.observability.errorlog import ErrorLog
from gateway.stream.router import StreamRouter, stream_priority
from gateway.upstream.service import ServiceTarget
from tests.integration.proxy.harness import route, service


def target(protocol: str = "tcp") -> ServiceTarget:
    return ServiceTarget(service("127.0.0.1", 9000, protocol=protocol), None, None, True)


def stream_route(protocols: list[str], rid: str | None = None, **fields: Any) -> dict[str, Any]:
    row = route(None, protocols=protocols, **fields)
    if rid is not None:
        row["id"] = rid
    return row


def names(router: StreamRouter, tls: bool, sni: str | None, src: str = "10.0.0.1", sport: int = 40000,
          dst: str = "127.0.0.1", dport: int = 9000) -> str | None:  # fmt: skip
    found = router.match(tls, sni, src, sport, dst, dport)
    return found.name if found is not None else None


def test_priorities_follow_kongs_stream_get_priority() -> None:
    assert stream_priority({"snis": ["a.test"]}) == 1 << 61
    assert (
        stream_priority({"sources": [{"ip": "10.0.0.1"}], "destinations": [{"port": 9000}]}) == (1 << 61) | (8 << 4) | 4
    )
    assert stream_priority({"sources": [{"ip": "10.0.0.0/8", "port": 1}]}) == (1 | 4) << 4
    assert stream_priority({"destinations": [{"ip": "127.0.0.1"}, {"ip": "::/0"}]}) == 8 | 1


def test_sni_beats_destination_and_ip_beats_port_beats_cidr() -> None:
    svc = target()
    rows = [
        (stream_route(["tls"], name="by-port", destinations=[{"port": 9000}]), svc),
        (stream_route(["tls"], name="by-cidr", destinations=[{"ip": "127.0.0.0/8"}]), svc),
        (stream_route(["tls"], name="by-ip", destinations=[{"ip": "127.0.0.1"}]), svc),
        (stream_route(["tls"], name="by-sni", snis=["a.test"]), svc),
    ]
    router = StreamRouter(rows)
    assert names(router, True, "a.test") == "by-sni"
    assert names(router, True, "b.test") == "by-ip"
    assert names(router, True, "b.test", dst="127.0.0.2") == "by-port"
    assert names(router, True, "b.test", dst="127.0.0.2", dport=9001) == "by-cidr"
    assert names(router, True, "b.test", dst="10.1.1.1", dport=9001) is None


def test_snis_are_no_condition_for_a_tcp_connection() -> None:
    """Kong's ``(net.protocol != "tls" || tls.sni == ...)``: a plain connection matches whatever the snis."""
    router = StreamRouter([(stream_route(["tls"], name="sni", snis=["a.test"]), target())])
    assert names(router, False, None) == "sni"
    assert names(router, True, "a.test") == "sni"
    assert names(router, True, "") is None  # a ClientHello without server name: tls, empty SNI
    assert names(router, True, "other.test") is None


def test_sni_patterns_are_the_atc_ones() -> None:
    svc = target()
    router = StreamRouter(
        [
            (stream_route(["tls_passthrough"], name="suffix", snis=["*.foo.test"]), svc),
            (stream_route(["tls_passthrough"], name="prefix", snis=["bar.*"]), svc),
            (stream_route(["tls_passthrough"], name="dot", snis=["dot.test."]), svc),
        ]
    )
    assert names(router, True, "a.b.foo.test") == "suffix"  # spans labels, unlike certificate wildcards
    assert names(router, True, "bar.y.z") == "prefix"
    assert names(router, True, "dot.test") == "dot"
    assert names(router, True, "foo.test") is None


def test_sources_and_destinations_entries() -> None:
    svc = target()
    router = StreamRouter(
        [
            (stream_route(["tcp"], name="src", sources=[{"ip": "10.0.0.0/8", "port": 5000}, {"ip": "::1"}]), svc),
            (stream_route(["tcp"], name="dst6", destinations=[{"ip": "fd00::/8"}]), svc),
        ]
    )
    assert names(router, False, None, src="10.9.9.9", sport=5000) == "src"
    assert names(router, False, None, src="10.9.9.9", sport=5001) is None
    assert names(router, False, None, src="::1", sport=1) == "src"
    assert names(router, False, None, dst="fd00::1") == "dst6"
    assert names(router, False, None, dst="127.0.0.1") is None


def test_ties_go_to_the_greater_route_id() -> None:
    low, high = str(uuid.UUID(int=1)), str(uuid.UUID(int=2))
    svc = target()
    rows = [
        (stream_route(["tcp"], rid=high, name="high", destinations=[{"port": 9000}]), svc),
        (stream_route(["tcp"], rid=low, name="low", destinations=[{"port": 9000}]), svc),
    ]
    assert names(StreamRouter(rows), False, None) == "high"
    assert names(StreamRouter(rows[::-1]), False, None) == "high"


def test_http_routes_are_not_stream_routes_and_http_services_are_dropped_with_kongs_warning() -> None:
    stream = io.StringIO()
    log = ErrorLog(None, "debug", stream=stream)
    rows = [
        (route(None, name="http", paths=["/"]), target("http")),
        (stream_route(["tcp"], name="tcp-to-http", destinations=[{"port": 9000}]), target("http")),
        (stream_route(["udp"], name="udp", destinations=[{"port": 9000}]), target("udp")),
    ]
    router = StreamRouter(rows, log)
    assert [r.name for r in router.routes] == ["tcp-to-http"]
    assert router.routes[0].service is None
    text = stream.getvalue()
    assert "[warn]" in text and "service with protocol 'http' cannot be used with 'stream' subsystem" in text
    assert f"could not add route: {rows[2][0]['id']}, err: udp routes are not supported" in text


def test_what_an_ssl_listener_does_with_a_route() -> None:
    svc = target()
    tls, both, passthrough, tcp = (
        StreamRouter([(stream_route(p, snis=None, destinations=[{"port": 1}]), svc)]).routes[0]
        for p in (["tls"], ["tcp", "tls"], ["tls_passthrough"], ["tcp"])
    )
    assert tls.terminate and both.terminate and not tls.passthrough
    assert passthrough.passthrough and not passthrough.terminate
    assert not tcp.terminate and not tcp.passthrough
