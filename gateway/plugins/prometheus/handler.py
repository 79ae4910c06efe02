"""The prometheus plugin's log phase (Kong's ``kong/plugins/prometheus/handler.lua`` + ``exporter.log``).

For each request that matched a route, the instance that applies (Kong's precedence) counts, per its flags:

- ``status_code_metrics``: ``kong_http_requests_total{service, route, code, source, workspace, consumer}``, with
  ``source`` ``service`` when the response came from the upstream and ``kong`` otherwise;
- ``latency_metrics``: ``kong_request_latency_ms``, ``kong_upstream_latency_ms`` (when the request was sent
  upstream) and ``kong_kong_latency_ms`` histograms ``{service, route, workspace}``;
- ``bandwidth_metrics``: ``kong_bandwidth_bytes{service, route, direction, workspace, consumer}``, ``ingress`` (the
  request's length) and ``egress`` (the bytes sent), each when not 0;
- ``per_consumer``: the ``consumer`` label is the authenticated consumer's ``username`` (else empty).

``service`` is the service's name, else its host (empty for a route without a service); ``route`` is the route's
name, else its id. Both are computed once per configuration (a map route id -> labels, shared by every instance of
the snapshot), so a request pays a dict lookup and the counter increments of ``metrics.HttpCounters``.

``upstream_health_metrics`` is read at scrape time (``exporter``): any configured instance with it on exports
``kong_upstream_target_health``, as Kong's ``configure`` phase decides.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from gateway.entities.index import foreign_id
from gateway.plugins.base import BuildContext, Plugin, PluginContext, register_handler
from gateway.plugins.prometheus.metrics import HTTP, WORKSPACE

__all__ = ["NAME", "Prometheus", "route_labels"]

NAME: Final = "prometheus"


def route_labels(config: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """Route id -> (``service`` label, ``route`` label), from a configuration export."""
    services = {str(row["id"]): row for row in config.get("services", []) if row.get("id") is not None}
    labels: dict[str, tuple[str, str]] = {}
    for route in config.get("routes", []):
        route_id = foreign_id(route.get("id"))
        if route_id is None:
            continue
        service = services.get(foreign_id(route.get("service")) or "")
        service_label = str(service.get("name") or service.get("host") or "") if service is not None else ""
        labels[route_id] = (service_label, str(route.get("name") or route_id))
    return labels


_CODES: Final = tuple(str(code) for code in range(600))


@register_handler
class Prometheus(Plugin):
    """One compiled instance: its flags and the snapshot's route labels."""

    NAME = NAME
    PRIORITY = 13

    __slots__ = ("bandwidth", "labels", "latency", "per_consumer", "status_codes", "upstream_health")

    def __init__(self, row: Mapping[str, Any], labels: Mapping[str, tuple[str, str]]) -> None:
        super().__init__(row)
        config: Mapping[str, Any] = row.get("config") or {}
        self.per_consumer = bool(config.get("per_consumer"))
        self.status_codes = bool(config.get("status_code_metrics"))
        self.latency = bool(config.get("latency_metrics"))
        self.bandwidth = bool(config.get("bandwidth_metrics"))
        self.upstream_health = bool(config.get("upstream_health_metrics"))
        self.labels = labels

    @classmethod
    def compile(cls, row: Mapping[str, Any], build: BuildContext) -> Prometheus:
        return cls(row, build.memo((NAME, "route labels"), lambda: route_labels(build.config)))

    def log(self, ctx: PluginContext) -> None:
        try:
            self._count(ctx)
        except Exception:
            HTTP.errors += 1  # ``kong_nginx_metric_errors_total``; the chain logs the failure
            raise

    def _count(self, ctx: PluginContext) -> None:
        facts = ctx.log_facts
        labels = self.labels.get(ctx.route_id) if ctx.route_id is not None else None
        if facts is None or labels is None:
            return  # Kong: no route, nothing counted
        service, route = labels
        consumer = ""
        if self.per_consumer and ctx.consumer is not None:
            consumer = str(ctx.consumer.get("username") or "")
        counters = HTTP
        if self.status_codes:
            status = facts.status
            code = _CODES[status] if 0 <= status < 600 else str(status)
            counters.count_request((service, route, code, "service" if facts.proxied else "kong", WORKSPACE, consumer))
        if self.latency:
            counters.observe_latencies((service, route, WORKSPACE), facts.kong_ms, facts.upstream_ms, facts.request_ms)
        if self.bandwidth:
            ingress = facts.request_size
            if ingress > 0:
                counters.add_bandwidth((service, route, "ingress", WORKSPACE, consumer), ingress)
            egress = facts.response_bytes
            if egress > 0:
                counters.add_bandwidth((service, route, "egress", WORKSPACE, consumer), egress)
