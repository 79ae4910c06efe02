"""The Admin API health endpoints, the passive circuit breaker, and probes kept apart from proxied connections."""

from __future__ import annotations

import time
from typing import Any

from tests.fixtures.nginx import NginxRunner
from tests.fixtures.ports import closed_port
from tests.integration.upstream.conftest import plain_target

PASSIVE = {"passive": {"unhealthy": {"tcp_failures": 1}}}


def test_passive_circuit_breaker_and_forced_health(nginx: NginxRunner, gateway_factory: Any) -> None:
    live = plain_target(nginx, "live")
    gw = gateway_factory()
    kong = gw.kong
    dead_port = closed_port()
    kong.post("/upstreams", {"name": "cb.test", "healthchecks": PASSIVE})
    dead, alive = f"127.0.0.1:{dead_port}", f"127.0.0.1:{live.port}"
    kong.post("/upstreams/cb.test/targets", {"target": dead})
    kong.post("/upstreams/cb.test/targets", {"target": alive})
    gw.route("cb", "cb.test")
    assert gw.target_health("cb.test", dead) == "HEALTHY"  # no probe: healthy until traffic says otherwise
    # proxied traffic trips the breaker on the first connect failure; every client still gets a 200
    assert {kong.proxy.get("/cb").text for _ in range(6)} == {"live"}
    assert gw.target_health("cb.test", dead) == "UNHEALTHY"
    mark = kong.mark()
    assert [kong.proxy.get("/cb").status_code for _ in range(10)] == [200] * 10
    assert not [line for line in kong.lines_since(mark) if f":{dead_port}" in line and "connect() failed" in line]

    # an unrelated configuration change rebuilds the snapshot; the breaker stays open
    kong.post("/services", {"name": "other", "host": "example.test"})
    assert gw.target_health("cb.test", dead) == "UNHEALTHY"

    # forcing: 204, the state and the balancer follow
    res = kong.admin.put(f"/upstreams/cb.test/targets/{alive}/unhealthy")
    assert res.status_code == 204 and res.content == b""
    assert gw.target_health("cb.test", alive) == "UNHEALTHY"
    res = kong.proxy.get("/cb")
    assert res.status_code == 503 and res.json()["message"] == "failure to get a peer from the ring-balancer"
    balancer = gw.health("cb.test", balancer_health="1")
    assert balancer["data"]["health"] == "UNHEALTHY" and balancer["data"]["balancer_health"] == "UNHEALTHY"
    assert balancer["node_id"] and balancer["next"] is None
    assert kong.admin.post(f"/upstreams/cb.test/targets/{alive}/healthy").status_code == 204
    assert kong.proxy.get("/cb").text == "live"
    assert "healthy forced for 127.0.0.1 127.0.0.1:" in "\n".join(kong.lines_since(mark))

    # errors: unknown upstream or target -> 404; an upstream without health checks -> 400
    assert kong.admin.put(f"/upstreams/nope/targets/{alive}/healthy").status_code == 404
    assert kong.admin.put("/upstreams/cb.test/targets/10.9.9.9:1/healthy").status_code == 404
    kong.post("/upstreams", {"name": "off.test"})
    kong.post("/upstreams/off.test/targets", {"target": alive})
    res = kong.admin.put(f"/upstreams/off.test/targets/{alive}/unhealthy")
    assert res.status_code == 400 and res.json() == {"message": "no healthchecker found for off.test"}
    assert gw.target_health("off.test", alive) == "HEALTHCHECKS_OFF"


def test_health_endpoint_shape_and_address_forcing(nginx: NginxRunner, gateway_factory: Any) -> None:
    live = plain_target(nginx, "live")
    gw = gateway_factory()
    kong = gw.kong
    kong.post("/upstreams", {"name": "named.test", "healthchecks": PASSIVE})
    name_target = f"localhost:{live.port}"
    kong.post("/upstreams/named.test/targets", {"target": name_target, "weight": 30})
    kong.post("/upstreams/named.test/targets", {"target": "unresolvable.invalid:80"})
    kong.post("/upstreams/named.test/targets", {"target": "127.0.0.1:9", "weight": 0})
    body = gw.health("named.test")
    assert set(body) == {"data", "next", "node_id"}
    rows = {row["target"]: row for row in body["data"]}
    assert body["data"][0]["target"] == "127.0.0.1:9"  # newest first, as Kong pages them
    assert rows[name_target]["health"] == "HEALTHY"
    assert rows[name_target]["data"] == {
        "host": "localhost",
        "port": live.port,
        "dns": "A",
        "nodeWeight": 30,
        "weight": {"total": 30, "unavailable": 0, "available": 30},
        "addresses": [{"ip": "127.0.0.1", "port": live.port, "weight": 30, "health": "HEALTHY"}],
    }
    assert rows["unresolvable.invalid:80"]["health"] == "DNS_ERROR"
    assert rows["127.0.0.1:9"]["health"] == "HEALTHCHECKS_OFF"  # weight 0
    # one address of a name target
    res = kong.admin.put(f"/upstreams/named.test/targets/{name_target}/127.0.0.1:{live.port}/unhealthy")
    assert res.status_code == 204
    assert gw.target_health("named.test", name_target) == "UNHEALTHY"
    paged = kong.admin.get("/upstreams/named.test/health", params={"size": 1}).json()
    assert paged["offset"] == "1" and paged["next"] == "/upstreams/named.test/health?offset=1"


def test_probes_never_share_connections_with_proxied_traffic(nginx: NginxRunner, gateway_factory: Any) -> None:
    target = plain_target(nginx, "t")
    gw = gateway_factory()
    kong = gw.kong
    checks = {"active": {"type": "http", "http_path": "/probe", "healthy": {"interval": 0.1, "successes": 1}}}
    kong.post("/upstreams", {"name": "iso.test", "healthchecks": checks})
    kong.post("/upstreams/iso.test/targets", {"target": f"127.0.0.1:{target.port}"})
    gw.route("iso", "iso.test")
    deadline = time.monotonic() + 10
    while sum('"GET /probe HTTP/1.0"' in line for line in target.access_log_lines()) < 5:
        assert time.monotonic() < deadline, "the active checker never probed"
        assert kong.proxy.get("/iso").status_code == 200
    lines = [line.split(" ", 3) for line in target.access_log_lines()]
    probes = {conn for _, conn, _, rest in lines if rest.startswith('"GET /probe HTTP/1.0"')}
    proxied = {conn for _, conn, _, rest in lines if rest.startswith('"GET / HTTP/1.1"')}
    assert probes and proxied and not probes & proxied
    assert all(n == "1" for _, conn, n, rest in lines if conn in probes)  # one request per probe connection
    assert any(n != "1" for _, conn, n, _ in lines if conn in proxied)  # the proxy's connections are kept alive
