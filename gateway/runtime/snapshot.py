"""The runtime snapshot: everything the traffic flow reads, compiled once from a configuration.

Rules:

1. ``build_snapshot(config, settings)`` is the only constructor. It may be slow (it compiles regexes,
   sorts matchers, builds balancers); requests never touch the store or the rows again.
2. A ``Snapshot`` is immutable after construction: the runtime swaps ``ProxyState.snapshot`` for a new
   one, and a request keeps the snapshot it started with.
3. What goes in (Kong's ``new_router``): routes of HTTP protocols; a route whose service is disabled is
   left out (so it 404s); a route without a service is kept (it answers 503 "no Service found").
4. Each service is compiled into a ``ServiceTarget`` with its connect hook (``CONNECTORS`` by protocol)
   and its pool identity. TLS fields (certificate index, upstream TLS profiles) will be added here as
   plain attributes; the hot path reads them from the objects, never from rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.proxy.balancer import Balancer, is_ip_literal
from gateway.proxy.router import Router
from gateway.proxy.upstream import CONNECTORS, ServiceTarget
from gateway.settings import Settings
from gateway.store.interface import Config

__all__ = ["Snapshot", "build_snapshot"]


class Snapshot:
    """Compiled configuration for the proxy.

    Attributes:
        router: the compiled ``Router``.
        services: service id -> ``ServiceTarget``.
        balancers: upstream entity name -> ``Balancer``.
        version: an opaque version label (the store version when the runtime provides one).
    """

    __slots__ = ("balancers", "router", "services", "version")

    def __init__(
        self,
        router: Router,
        services: Mapping[str, ServiceTarget],
        balancers: Mapping[str, Balancer],
        version: Any = None,
    ) -> None:
        self.router = router
        self.services = dict(services)
        self.balancers = dict(balancers)
        self.version = version


def _compile_service(row: Mapping[str, Any], balancers: Mapping[str, Balancer]) -> ServiceTarget:
    protocol = row.get("protocol") or "http"
    host = row["host"]
    return ServiceTarget(
        row,
        balancer=balancers.get(host),
        connect=CONNECTORS.get(protocol),
        host_is_ip=is_ip_literal(host),
        pool_identity=(),
    )


def build_snapshot(config: Config, settings: Settings, version: Any = None) -> Snapshot:
    """Compile ``config`` (entity name -> rows in Kong's Admin-API shape) into a ``Snapshot``."""
    targets_by_upstream: dict[str, list[Mapping[str, Any]]] = {}
    for target in config.get("targets", []):
        upstream_ref = target.get("upstream") or {}
        upstream_id = upstream_ref.get("id") if isinstance(upstream_ref, Mapping) else upstream_ref
        if upstream_id is not None:
            targets_by_upstream.setdefault(str(upstream_id), []).append(target)
    balancers: dict[str, Balancer] = {}
    for upstream in config.get("upstreams", []):
        balancers[upstream["name"]] = Balancer(upstream, targets_by_upstream.get(str(upstream["id"]), []))

    services: dict[str, ServiceTarget] = {}
    for row in config.get("services", []):
        services[row["id"]] = _compile_service(row, balancers)

    pairs: list[tuple[Mapping[str, Any], ServiceTarget | None]] = []
    for route in config.get("routes", []):
        ref = route.get("service")
        service: ServiceTarget | None = None
        if ref:
            service_id = ref.get("id") if isinstance(ref, Mapping) else ref
            service = services.get(str(service_id))
            if service is None:
                continue  # dangling reference: Kong fails the router build; we skip the route
            if not service.enabled:
                continue
        pairs.append((route, service))
    return Snapshot(Router(pairs), services, balancers, version)
