"""The prometheus plugin's log phase: which flag counts what, under Kong's labels and buckets."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from gateway.entities.plugin_configs import PROMETHEUS
from gateway.plugins.base import BuildContext, LogFacts, PluginContext
from gateway.plugins.chains import PluginIndex
from gateway.plugins.prometheus import Prometheus
from gateway.plugins.prometheus.metrics import HTTP, KONG_LATENCY_BUCKETS, UPSTREAM_LATENCY_BUCKETS

CONFIG: dict[str, Any] = {
    "services": [
        {"id": "s1", "name": "billing", "host": "billing.internal"},
        {"id": "s2", "name": None, "host": "orders.internal"},
    ],
    "routes": [
        {"id": "r1", "name": "invoices", "service": {"id": "s1"}},
        {"id": "r2", "name": None, "service": {"id": "s2"}},
        {"id": "r3", "name": "orphan", "service": None},
    ],
    "consumers": [{"id": "c1", "username": "alice"}],
}
ALL = {"status_code_metrics": True, "latency_metrics": True, "bandwidth_metrics": True, "per_consumer": True}


@pytest.fixture(autouse=True)
def fresh_counters() -> Iterator[None]:
    HTTP.clear()
    yield
    HTTP.clear()


def plugin(config: dict[str, Any]) -> Prometheus:
    row = {"id": "p1", "name": "prometheus", "config": PROMETHEUS.config.process_auto_fields(config, "insert")}
    instance = Prometheus.compile(row, BuildContext(CONFIG))
    assert isinstance(instance, Prometheus)
    return instance


def finished(
    route_id: str | None,
    status: int = 200,
    proxied: bool = True,
    times: tuple[float, float, float, float] = (10.0, 10.004, 10.030, 10.031),
    consumer: dict[str, Any] | None = None,
) -> PluginContext:
    ctx = PluginContext(tls=None, conn_cache=None, headers=[], route_id=route_id, service_id=None)
    ctx.consumer = consumer
    head = SimpleNamespace(request_line="GET /invoices HTTP/1.1", headers=[("Host", "api.test"), ("X-A", "b")])
    start, sent, head_at, end = times
    ctx.log_facts = LogFacts(status, proxied, start, sent, head_at if proxied else 0.0, end, head, 5, 321)
    return ctx


def test_status_codes_per_service_route_code_source_and_consumer() -> None:
    prom = plugin(ALL)
    prom.log(finished("r1"))
    prom.log(finished("r1"))
    prom.log(finished("r1", 502, proxied=False, times=(1.0, 1.002, 0.0, 1.010), consumer={"id": "c1"}))
    prom.log(finished("r2", 404, proxied=False, times=(2.0, 0.0, 0.0, 2.001), consumer={"id": "c2", "custom_id": "x"}))
    prom.log(finished("r3", 503, proxied=False, times=(3.0, 0.0, 0.0, 3.0)))
    prom.log(finished(None))  # no route: Kong counts nothing
    assert HTTP.requests == {
        ("billing", "invoices", "200", "service", "default", ""): 2,
        ("billing", "invoices", "502", "kong", "default", ""): 1,  # per_consumer, but this consumer has no username
        ("orders.internal", "r2", "404", "kong", "default", ""): 1,  # no service name: host; no route name: id
        ("", "orphan", "503", "kong", "default", ""): 1,
    }
    prom.log(finished("r1", consumer={"id": "c1", "username": "alice"}))
    assert HTTP.requests[("billing", "invoices", "200", "service", "default", "alice")] == 1


def test_latencies_go_to_kongs_buckets() -> None:
    prom = plugin({"latency_metrics": True})
    # whole milliseconds, as nginx's: kong 4.5 -> 4, upstream 26.5 -> 26, request 31.5 -> 31
    prom.log(finished("r1", times=(10.0, 10.0045, 10.031, 10.0315)))
    prom.log(finished("r1", 502, proxied=False, times=(20.0, 0.0, 0.0, 20.0025)))  # never sent: no upstream latency
    key = ("billing", "invoices", "default")
    kong = HTTP.kong_latency[key]
    assert kong[KONG_LATENCY_BUCKETS.index(5)] == 1  # 4 ms <= 5
    assert kong[KONG_LATENCY_BUCKETS.index(2)] == 1  # 2 ms <= 2 (a bound is inclusive, Prometheus' "le")
    assert kong[-1] == 6 and sum(kong[:-1]) == 2
    upstream = HTTP.upstream_latency[key]
    assert upstream[UPSTREAM_LATENCY_BUCKETS.index(50)] == 1 and sum(upstream[:-1]) == 1 and upstream[-1] == 26
    request = HTTP.request_latency[key]
    assert sum(request[:-1]) == 2 and request[-1] == 31 + 2
    assert HTTP.requests == {} and HTTP.bandwidth == {}  # other flags off


def test_bandwidth_is_the_request_length_and_the_bytes_sent() -> None:
    prom = plugin({"bandwidth_metrics": True})
    prom.log(finished("r1"))
    request_length = len("GET /invoices HTTP/1.1\r\n") + len("Host: api.test\r\n") + len("X-A: b\r\n") + 2 + 5
    assert HTTP.bandwidth == {
        ("billing", "invoices", "ingress", "default", ""): request_length,
        ("billing", "invoices", "egress", "default", ""): 321,
    }


def test_nothing_is_counted_with_kongs_defaults() -> None:
    prom = plugin({})
    prom.log(finished("r1"))
    assert HTTP.requests == {} and HTTP.kong_latency == {} and HTTP.bandwidth == {}


def test_a_failing_log_phase_counts_a_metric_error() -> None:
    prom = plugin(ALL)
    ctx = finished("r1")
    ctx.log_facts.head = None  # type: ignore[union-attr]  # the request size cannot be computed
    with pytest.raises(AttributeError):
        prom.log(ctx)
    assert HTTP.errors == 1


def test_a_global_instance_puts_the_log_phase_on_every_route() -> None:
    config = dict(CONFIG, plugins=[{"id": "p1", "name": "prometheus", "config": {"status_code_metrics": True}}])
    index = PluginIndex.build(config)
    for route in ("r1", "r2", "r3"):
        chain = index.chain(route)
        assert chain is not None and chain.has_log and not chain.has_header_filter


def test_ai_and_wasm_metrics_are_refused_on() -> None:
    errors = PROMETHEUS.config.validate(
        PROMETHEUS.config.process_auto_fields({"ai_metrics": True, "wasm_metrics": True}, "insert")
    )
    assert set(errors) == {"ai_metrics", "wasm_metrics"}
    assert PROMETHEUS.config.validate(PROMETHEUS.config.process_auto_fields({**ALL}, "insert")) == {}
