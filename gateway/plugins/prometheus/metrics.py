"""Kong's prometheus metric families (names, help, labels, buckets) and the per-request counters behind them.

The table ``KONG_SPECS`` is Kong 3.x's ``kong/plugins/prometheus/exporter.lua`` written as data (the ``kong_``
prefix included, so ``kong_latency_ms`` is ``kong_kong_latency_ms`` as Kong exposes it). The stream-only, AI,
Wasm, hybrid-mode and shared-dict families are not listed: nothing here produces them (see docs/compatibility.md).

``HttpCounters`` is what the plugin's log phase updates, one per process (``HTTP``): dicts keyed by label-value
tuples holding plain ints, and histograms as per-bucket count lists (``exposition.Samples``'s layout), so that a
request costs a few dict operations and ``prometheus_client`` only runs at scrape time. They live as long as the
process, across configuration changes, as Kong's counters live in its shared dict.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Final

from gateway.observability.exposition import MetricSpec, Samples

__all__ = [
    "HTTP",
    "KONG_LATENCY_BUCKETS",
    "KONG_SPECS",
    "UPSTREAM_LATENCY_BUCKETS",
    "WORKSPACE",
    "HttpCounters",
]

KONG_LATENCY_BUCKETS: Final = (1, 2, 5, 7, 10, 15, 20, 30, 50, 75, 100, 200, 500, 750, 1000, 3000, 6000)
UPSTREAM_LATENCY_BUCKETS: Final = (25, 50, 80, 100, 250, 400, 700, 1000, 2000, 5000, 10000, 30000, 60000)
#: ``workspace_name``: Kong OSS has the one ``default`` workspace
WORKSPACE: Final = "default"
#: ``subsystem`` / ``kong_subsystem``: only the http subsystem exists here
SUBSYSTEM: Final = "http"

HTTP_REQUESTS: Final = "kong_http_requests_total"
KONG_LATENCY: Final = "kong_kong_latency_ms"
UPSTREAM_LATENCY: Final = "kong_upstream_latency_ms"
REQUEST_LATENCY: Final = "kong_request_latency_ms"
BANDWIDTH: Final = "kong_bandwidth_bytes"
TARGET_HEALTH: Final = "kong_upstream_target_health"
CONNECTIONS: Final = "kong_nginx_connections_total"
REQUESTS_TOTAL: Final = "kong_nginx_requests_total"
DATASTORE: Final = "kong_datastore_reachable"
NODE_INFO: Final = "kong_node_info"
WORKER_MEMORY: Final = "kong_memory_workers_lua_vms_bytes"
METRIC_ERRORS: Final = "kong_nginx_metric_errors_total"

_LATENCY_LABELS: Final = ("service", "route", "workspace")

KONG_SPECS: Final = (
    MetricSpec(CONNECTIONS, "gauge", "Number of connections by subsystem", ("node_id", "subsystem", "state")),
    MetricSpec(REQUESTS_TOTAL, "gauge", "Number of requests total", ("node_id", "subsystem")),
    MetricSpec(DATASTORE, "gauge", "Datastore reachable from Kong, 0 is unreachable"),
    MetricSpec(NODE_INFO, "gauge", "Kong Node metadata information", ("node_id", "version")),
    MetricSpec(
        TARGET_HEALTH,
        "gauge",
        "Health status of targets of upstream. States = healthchecks_off|healthy|unhealthy|dns_error, "
        "value is 1 when state is populated.",
        ("upstream", "target", "address", "state", "subsystem"),
    ),
    MetricSpec(WORKER_MEMORY, "gauge", "Allocated bytes in worker Lua VM", ("node_id", "pid", "kong_subsystem")),
    MetricSpec(
        HTTP_REQUESTS,
        "counter",
        "HTTP status codes per consumer/service/route in Kong",
        ("service", "route", "code", "source", "workspace", "consumer"),
    ),
    MetricSpec(
        KONG_LATENCY,
        "histogram",
        "Latency added by Kong and enabled plugins for each service/route in Kong",
        _LATENCY_LABELS,
        KONG_LATENCY_BUCKETS,
    ),
    MetricSpec(
        UPSTREAM_LATENCY,
        "histogram",
        "Latency added by upstream response for each service/route in Kong",
        _LATENCY_LABELS,
        UPSTREAM_LATENCY_BUCKETS,
    ),
    MetricSpec(
        REQUEST_LATENCY,
        "histogram",
        "Total latency incurred during requests for each service/route in Kong",
        _LATENCY_LABELS,
        UPSTREAM_LATENCY_BUCKETS,
    ),
    MetricSpec(
        BANDWIDTH,
        "counter",
        "Total bandwidth (ingress/egress) throughput in bytes",
        ("service", "route", "direction", "workspace", "consumer"),
    ),
    MetricSpec(METRIC_ERRORS, "counter", "Number of nginx-lua-prometheus errors"),
)
"""Kong's families, in exposition order."""

#: the families that exist only once a prometheus plugin instance is configured (Kong's shared-dict metrics; the
#: others are its ``LOCAL_STORAGE`` gauges, exported whenever ``/metrics`` is served)
PLUGIN_FAMILIES: Final = frozenset(
    (HTTP_REQUESTS, KONG_LATENCY, UPSTREAM_LATENCY, REQUEST_LATENCY, BANDWIDTH, METRIC_ERRORS)
)

LatencyKey = tuple[str, str, str]


def _observe(histogram: dict[LatencyKey, list[int]], key: LatencyKey, buckets: tuple[int, ...], value: int) -> None:
    slot = histogram.get(key)
    if slot is None:
        slot = histogram[key] = [0] * (len(buckets) + 2)  # one count per bucket, +Inf, then the sum
    slot[bisect_left(buckets, value)] += 1  # the first bucket whose bound is >= value (Prometheus' "le")
    slot[-1] += value


class HttpCounters:
    """This process's counts for Kong's per-request families (``HTTP`` is the process-wide instance)."""

    __slots__ = ("bandwidth", "errors", "kong_latency", "request_latency", "requests", "upstream_latency")

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, str, str, str, str], int] = {}
        self.bandwidth: dict[tuple[str, str, str, str, str], int] = {}
        self.kong_latency: dict[LatencyKey, list[int]] = {}
        self.upstream_latency: dict[LatencyKey, list[int]] = {}
        self.request_latency: dict[LatencyKey, list[int]] = {}
        #: failures of the log phase itself (``kong_nginx_metric_errors_total``)
        self.errors = 0

    def count_request(self, key: tuple[str, str, str, str, str, str]) -> None:
        counts = self.requests
        counts[key] = counts.get(key, 0) + 1

    def add_bandwidth(self, key: tuple[str, str, str, str, str], size: int) -> None:
        counts = self.bandwidth
        counts[key] = counts.get(key, 0) + size

    def observe_latencies(self, key: LatencyKey, kong_ms: int, upstream_ms: int | None, request_ms: int) -> None:
        _observe(self.request_latency, key, UPSTREAM_LATENCY_BUCKETS, request_ms)
        if upstream_ms is not None:
            _observe(self.upstream_latency, key, UPSTREAM_LATENCY_BUCKETS, upstream_ms)
        _observe(self.kong_latency, key, KONG_LATENCY_BUCKETS, kong_ms)

    def into(self, samples: Samples) -> None:
        """Add this process's counts to ``samples``."""
        for request_labels, value in list(self.requests.items()):
            samples.add(HTTP_REQUESTS, request_labels, value)
        for bandwidth_labels, size in list(self.bandwidth.items()):
            samples.add(BANDWIDTH, bandwidth_labels, size)
        for name, histogram in (
            (KONG_LATENCY, self.kong_latency),
            (UPSTREAM_LATENCY, self.upstream_latency),
            (REQUEST_LATENCY, self.request_latency),
        ):
            for key, counts in list(histogram.items()):
                samples.add_histogram(name, key, counts)
        samples.add(METRIC_ERRORS, (), self.errors)

    def clear(self) -> None:
        for name in ("bandwidth", "kong_latency", "request_latency", "requests", "upstream_latency"):
            getattr(self, name).clear()
        self.errors = 0


HTTP: Final = HttpCounters()
"""This process's counters: every prometheus plugin instance's log phase updates this object."""
