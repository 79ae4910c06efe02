"""Load balancing over real nginx targets: weights, a target killed and brought back, retries, least-connections.

Acceptance of issue 6: traffic spreads by weight (counted from each target's own access log); a killed target is
detected by active checks and traffic moves away with no client error (connect failures are retried on the other
target); it comes back once it answers again.
"""

from __future__ import annotations

import re
import time
from typing import Any

from tests.fixtures.nginx import NginxRunner
from tests.integration.upstream.conftest import plain_target, restart

THREE_PORTS = """
    server { listen 127.0.0.1:{port};  access_log {prefix}/t1.log gw; location / { return 200 "t1"; } }
    server { listen 127.0.0.1:{port2}; access_log {prefix}/t2.log gw; location / { return 200 "t2"; } }
    server { listen 127.0.0.1:{port3}; access_log {prefix}/t3.log gw; location / { return 200 "t3"; } }
"""

ACTIVE_HTTP: dict[str, Any] = {
    "active": {
        "type": "http",
        "http_path": "/",
        "timeout": 1,
        "healthy": {"interval": 0.1, "successes": 1},
        "unhealthy": {"interval": 0.1, "tcp_failures": 1, "http_failures": 1, "timeouts": 1},
    }
}


def _upstream_port(line: str) -> str:
    """The port of ``upstream: "http://127.0.0.1:<port>/"`` in an error-log line."""
    match = re.search(r'upstream: "http://127\.0\.0\.1:(\d+)/"', line)
    assert match is not None, line
    return match.group(1)


def _lines(path: Any) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_traffic_spreads_by_weight(nginx: NginxRunner, gateway_factory: Any) -> None:
    targets = nginx.start(THREE_PORTS, ports=3)
    gw = gateway_factory()
    kong = gw.kong
    kong.post("/upstreams", {"name": "weighted.test"})
    for port, weight in zip(targets.ports, (100, 50, 50), strict=True):
        kong.post("/upstreams/weighted.test/targets", {"target": f"127.0.0.1:{port}", "weight": weight})
    gw.route("weighted", "weighted.test")
    bodies = [kong.proxy.get("/weighted").text for _ in range(300)]
    assert set(bodies) == {"t1", "t2", "t3"}
    # nginx writes an access-log line after its response has gone out: wait (bounded) for the last one
    deadline = time.monotonic() + 5
    counts = [_lines(targets.prefix / f"t{i}.log") for i in (1, 2, 3)]
    while sum(counts) < 300 and time.monotonic() < deadline:
        time.sleep(0.02)
        counts = [_lines(targets.prefix / f"t{i}.log") for i in (1, 2, 3)]
    assert sum(counts) == 300
    # the wheel has 4 slots (100:50:50 reduced by the gcd) and 300 requests are 75 whole turns: 150/75/75
    for got, expected in zip(counts, (150, 75, 75), strict=True):
        assert abs(got - expected) <= 15, counts


def test_least_connections_and_consistent_hashing_spread_and_stick(nginx: NginxRunner, gateway_factory: Any) -> None:
    targets = nginx.start(THREE_PORTS, ports=3)
    gw = gateway_factory()
    kong = gw.kong
    kong.post("/upstreams", {"name": "lc.test", "algorithm": "least-connections"})
    kong.post("/upstreams", {"name": "hash.test", "hash_on": "header", "hash_on_header": "x-user"})
    for port in targets.ports:
        kong.post("/upstreams/lc.test/targets", {"target": f"127.0.0.1:{port}", "weight": 10})
        kong.post("/upstreams/hash.test/targets", {"target": f"127.0.0.1:{port}", "weight": 10})
    gw.route("lc", "lc.test")
    gw.route("hash", "hash.test")
    assert {kong.proxy.get("/lc").text for _ in range(30)} == {"t1", "t2", "t3"}
    sticky = {u: kong.proxy.get("/hash", headers={"x-user": u}).text for u in (f"user{i}" for i in range(40))}
    assert len(set(sticky.values())) > 1
    for user, where in sticky.items():
        assert kong.proxy.get("/hash", headers={"x-user": user}).text == where


def test_killed_target_is_detected_and_comes_back(nginx: NginxRunner, gateway_factory: Any) -> None:
    alpha, beta = plain_target(nginx, "alpha"), plain_target(nginx, "beta")
    gw = gateway_factory()
    kong = gw.kong
    kong.post("/upstreams", {"name": "pair.test", "healthchecks": ACTIVE_HTTP})
    a_target, b_target = f"127.0.0.1:{alpha.port}", f"127.0.0.1:{beta.port}"
    kong.post("/upstreams/pair.test/targets", {"target": a_target})
    kong.post("/upstreams/pair.test/targets", {"target": b_target})
    gw.route("pair", "pair.test")
    gw.wait_health("pair.test", a_target, "HEALTHY")
    gw.wait_health("pair.test", b_target, "HEALTHY")
    assert {kong.proxy.get("/pair").text for _ in range(10)} == {"alpha", "beta"}

    beta.stop()
    mark = kong.mark()
    deadline = time.monotonic() + 10
    statuses = []
    while gw.target_health("pair.test", b_target) != "UNHEALTHY":
        assert time.monotonic() < deadline, "beta was never marked unhealthy"
        res = kong.proxy.get("/pair")
        statuses.append((res.status_code, res.text))
    assert all(s == (200, "alpha") for s in statuses), statuses  # retries hid every connect failure
    detected = kong.lines_since(mark)
    wanted = f"[healthcheck] (default:pair.test) unhealthy TCP increment (1/1) for '127.0.0.1(127.0.0.1:{beta.port})'"
    assert any(wanted in line for line in detected), "\n".join(detected[-30:])
    mark = kong.mark()
    assert [kong.proxy.get("/pair").text for _ in range(20)] == ["alpha"] * 20
    assert not [line for line in kong.lines_since(mark) if "connect() failed" in line and str(beta.port) in line]

    restart(beta)
    before = len(beta.access_log_lines())
    gw.wait_health("pair.test", b_target, "HEALTHY")
    assert "beta" in {kong.proxy.get("/pair").text for _ in range(20)}
    assert len(beta.access_log_lines()) > before


def test_every_try_is_logged_and_the_502_comes_after_the_last(nginx: NginxRunner, gateway_factory: Any) -> None:
    from tests.fixtures.ports import closed_port

    gw = gateway_factory()
    kong = gw.kong
    dead = [closed_port() for _ in range(3)]
    kong.post("/upstreams", {"name": "dead.test"})
    for port in dead:
        kong.post("/upstreams/dead.test/targets", {"target": f"127.0.0.1:{port}"})
    gw.route("dead", "dead.test", retries=2)
    mark = kong.mark()
    res = kong.proxy.get("/dead")
    assert res.status_code == 502
    tries = [line for line in kong.lines_since(mark) if "connect() failed (111: Connection refused)" in line]
    assert len(tries) == 3  # retries + 1, each on another target
    assert {_upstream_port(t) for t in tries} == {str(p) for p in dead}
