"""A scrape's page: what Kong exports with and without a configured instance, target health, summed shares."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from gateway.observability.exposition import Samples
from gateway.plugins.prometheus.exporter import NodeFacts, exposition, process_share
from gateway.runtime.observing import health_rows
from tests.fixtures.metrics import parse

COUNTERS = {
    "connections_accepted": 7,
    "connections_handled": 7,
    "total_requests": 9,
    "connections_active": 2,
    "connections_reading": 0,
    "connections_writing": 1,
    "connections_waiting": 1,
}


def share(requests: int) -> Samples:
    samples = Samples()
    samples.add("kong_http_requests_total", ("s", "r", "200", "service", "default", ""), requests)
    samples.add("kong_tls_handshakes_total", ("0.0.0.0:8443", "TLSv1.3", "false"), requests)
    samples.add("kong_nginx_metric_errors_total", (), 0)
    return samples


def facts(**changes: Any) -> NodeFacts:
    base: dict[str, Any] = {
        "node_id": "n1",
        "version": "3.9.1",
        "counters": COUNTERS,
        "memory": [(11, 1000), (12, 2000)],
        "configured": True,
        "certificates": [(("c1", "a.test"), 1.8e9)],
    }
    base.update(changes)
    return NodeFacts(**base)


def test_shares_are_summed_and_the_node_facts_added() -> None:
    page = parse(exposition([share(3), share(4)], facts(errors=1)).decode())
    assert page.value("kong_http_requests_total", service="s", code="200") == 7.0
    assert page.value("kong_tls_handshakes_total", version="TLSv1.3") == 7.0
    assert page.value("kong_nginx_metric_errors_total") == 1.0  # a worker that did not answer
    assert {s["state"]: v for s, v in page.samples("kong_nginx_connections_total")} == {
        "accepted": 7.0,
        "handled": 7.0,
        "total": 9.0,
        "active": 2.0,
        "reading": 0.0,
        "writing": 1.0,
        "waiting": 1.0,
    }
    assert page.value("kong_nginx_requests_total", node_id="n1", subsystem="http") == 9.0
    assert [(s["pid"], v) for s, v in page.samples("kong_memory_workers_lua_vms_bytes")] == [
        ("11", 1000.0),
        ("12", 2000.0),
    ]
    assert page.value("kong_node_info", node_id="n1", version="3.9.1") == 1.0
    assert page.value("kong_datastore_reachable") == 1.0
    assert page.value("kong_tls_certificate_expiry_timestamp_seconds", certificate="c1", sni="a.test") == 1.8e9
    assert "kong_upstream_target_health" not in page.by_name  # no instance asked for it


def test_without_a_configured_instance_only_kongs_node_gauges_and_ours() -> None:
    page = parse(exposition([share(3)], facts(configured=False, db_reachable=False)).decode())
    assert "kong_http_requests_total" not in page.by_name and "kong_nginx_metric_errors_total" not in page.by_name
    assert page.value("kong_datastore_reachable") == 0.0
    assert page.value("kong_tls_handshakes_total", version="TLSv1.3") == 3.0


def test_target_health_has_one_sample_per_state() -> None:
    balancer = SimpleNamespace(name="backends")
    health = {
        "a.test:80": {"addresses": [{"ip": "10.0.0.1", "port": 80, "health": "HEALTHY"}]},
        "b.test:80": {"addresses": [{"ip": "::1", "port": 80, "health": "UNHEALTHY"}]},
        "gone.test:80": {"addresses": []},
        "c.test:80": {"addresses": [{"ip": "10.0.0.3", "port": 80, "health": "HEALTHCHECKS_OFF"}]},
    }
    registry = SimpleNamespace(balancers={"u1": balancer}, upstream_health=lambda upstream_id: health)
    rows = health_rows(registry)
    assert rows == [
        ("backends", "a.test:80", "10.0.0.1:80", "healthy"),
        ("backends", "b.test:80", "[::1]:80", "unhealthy"),
        ("backends", "gone.test:80", "", "dns_error"),
        ("backends", "c.test:80", "10.0.0.3:80", "healthchecks_off"),
    ]
    page = parse(exposition([], facts(health=rows)).decode())
    states = {s["state"]: v for s, v in page.samples("kong_upstream_target_health", target="b.test:80")}
    assert states == {"healthchecks_off": 0.0, "healthy": 0.0, "unhealthy": 1.0, "dns_error": 0.0}
    assert page.value("kong_upstream_target_health", target="gone.test:80", state="dns_error", address="") == 1.0
    assert health_rows(None) == []


def test_a_process_share_crosses_the_channel_as_json() -> None:
    mine = process_share()
    assert mine["rss"] > 0 and isinstance(mine["pid"], int)
    names = set(Samples.from_json(mine["samples"]).values)
    assert {"kong_tls_handshakes_total", "kong_nginx_metric_errors_total"} <= names
