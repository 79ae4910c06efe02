"""The runtime snapshot: everything the traffic flow reads, compiled once from a configuration.

Rules:

1. ``build_snapshot(config, settings)`` is the only constructor. It may be slow (it compiles regexes,
   sorts matchers, builds balancers); requests never touch the store or the rows again.
2. A ``Snapshot`` is immutable after construction: the runtime swaps ``ProxyState.snapshot`` for a new
   one, and a request keeps the snapshot it started with.
3. What goes in (Kong's ``new_router``): routes of HTTP protocols; a route whose service is disabled is
   left out (so it 404s); a route without a service is kept (it answers 503 "no Service found").
4. Each service is compiled into a ``ServiceTarget`` with its connect hook (``CONNECTORS`` by protocol)
   and its pool identity; TLS services also get their upstream TLS profile (``gateway.tls.upstream``: client
   certificate, trust store, verify, depth, a cached context), whose content-based identity is the pool
   identity. TLS fields are plain attributes; the hot path reads them from the objects, never from rows.
5. The export is indexed once (``gateway.entities.index.ConfigIndex``): rows by id, by name, by foreign key, read by
   every part below; the files of the global upstream TLS settings are read once per settings load
   (``gateway.tls.upstream.globals``).
6. With ``stream_listen`` set, the stream routes (``tcp``, ``tls``, ``tls_passthrough``) also get their router
   (``gateway.stream.router``) over the same (route, service) pairs; without it they are stored but not compiled,
   as Kong builds its stream router only in the stream subsystem.
7. Each upstream entity becomes a ``Balancer`` (``gateway.upstream.balancer``) over its targets; upstreams with
   ``https`` active checks also get their probe TLS (``gateway.tls.upstream.probes``), compiled here because it reads
   files. Health is not in the snapshot: the runtime's ``HealthRegistry`` attaches it before the swap.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from gateway.entities.index import ConfigIndex, Row, foreign_id
from gateway.proxy.router import Router
from gateway.settings import Settings
from gateway.store.interface import Config
from gateway.stream.router import StreamRouter
from gateway.tls.engine.hostnames import is_ip_literal
from gateway.tls.served.certificates import CertificateIndex
from gateway.tls.served.listener import ServerTlsConfig, ssl_listeners
from gateway.tls.upstream.globals import UpstreamTlsGlobals
from gateway.tls.upstream.probes import HealthcheckTlsCompiler
from gateway.tls.upstream.profile import UpstreamTlsCompiler, UpstreamTlsProfile
from gateway.upstream.balancer import Balancer
from gateway.upstream.service import CONNECTORS, ServiceTarget

if TYPE_CHECKING:
    from gateway.observability.errorlog import ErrorLog
    from gateway.plugins.chains import PluginIndex

__all__ = ["Snapshot", "build_snapshot"]


class Snapshot:
    """Compiled configuration for the proxy.

    Attributes:
        router: the compiled ``Router``.
        services: service id -> ``ServiceTarget``.
        balancers: upstream entity name -> ``Balancer``.
        version: an opaque version label (the store version when the runtime provides one).
        certificates: the downstream ``CertificateIndex`` (SNI -> compiled context) read by the ``ssl``
            listeners' SNI callback on every handshake; None when no ``ssl`` listener is configured.
        plugins: the ``PluginIndex`` (per-route plugin chains, the certificate-phase hook); empty when no plugin
            is configured, so a route without plugins costs one dict lookup.
        stream_router: the ``StreamRouter`` of the stream routes, or None without ``stream_listen``.
    """

    __slots__ = ("balancers", "certificates", "plugins", "router", "services", "stream_router", "version")

    def __init__(
        self,
        router: Router,
        services: Mapping[str, ServiceTarget],
        balancers: Mapping[str, Balancer],
        version: int | None = None,
        certificates: CertificateIndex | None = None,
        plugins: PluginIndex | None = None,
        stream_router: StreamRouter | None = None,
    ) -> None:
        self.certificates = certificates
        self.stream_router = stream_router
        if plugins is None:
            from gateway.plugins.chains import PluginIndex

            plugins = PluginIndex.empty()
        self.plugins = plugins
        self.router = router
        self.services = dict(services)
        self.balancers = dict(balancers)
        self.version = version


def _compile_service(row: Row, balancers: Mapping[str, Balancer], upstream_tls: UpstreamTlsCompiler) -> ServiceTarget:
    """A service row -> ``ServiceTarget``; TLS services get their upstream TLS profile (``gateway.tls.upstream``),
    whose content-based identity becomes the pool identity."""
    protocol = row.get("protocol") or "http"
    host = row["host"]
    profile: UpstreamTlsProfile | None = upstream_tls.profile(row)
    return ServiceTarget(
        row,
        balancer=balancers.get(host),
        connect=CONNECTORS.get(protocol),
        host_is_ip=is_ip_literal(host),
        pool_identity=profile.identity if profile is not None else (),
        tls_profile=profile,
    )


def build_snapshot(
    config: Config,
    settings: Settings,
    version: int | None = None,
    *,
    previous: Snapshot | None = None,
    server_tls: ServerTlsConfig | None = None,
    upstream_tls: UpstreamTlsGlobals | None = None,
    proxy: bool = True,
    log: ErrorLog | None = None,
) -> Snapshot:
    """Compile ``config`` (entity name -> rows in Kong's Admin-API shape) into a ``Snapshot``.

    The export is indexed once (``ConfigIndex``) and every part reads that index. ``server_tls`` is what the runtime
    loaded at start / SIGHUP (profile + default certificates), ``upstream_tls`` the global trust stores and client
    certificate of the same settings load; without them they are loaded here (tests, one-off builds). ``previous``
    lets the certificate index reuse the contexts of unchanged certificates; ``log`` receives its error lines.
    ``proxy=False`` builds only what a master that serves no traffic uses: the balancers (health checks); the
    router, services, certificates and plugins stay empty, though the settings' own files (default certificates,
    global trust store and client certificate) are still checked, as a full build would.
    """
    index = ConfigIndex(config)
    upstream_tls = upstream_tls if upstream_tls is not None else UpstreamTlsGlobals(settings)
    if not proxy:
        # what a full build refuses in the settings' own files, a master refuses too (its start-up stops with it)
        _build_certificates(ConfigIndex({}), settings, None, server_tls, log)
        balancers = _build_balancers(index, settings, upstream_tls)
        upstream_tls.load_proxy_side()
        return Snapshot(Router((), log), {}, balancers, version)
    certificates = _build_certificates(index, settings, previous, server_tls, log)
    balancers = _build_balancers(index, settings, upstream_tls)
    compiler = UpstreamTlsCompiler(settings, index, globals_=upstream_tls)
    services: dict[str, ServiceTarget] = {}
    for row in index.rows("services"):
        services[row["id"]] = _compile_service(row, balancers, compiler)
    compiler.finish()

    pairs: list[tuple[Row, ServiceTarget | None]] = []
    for route in index.rows("routes"):
        service_id = foreign_id(route.get("service"))
        service: ServiceTarget | None = None
        if service_id is not None:
            service = services.get(service_id)
            if service is None:
                continue  # dangling reference: Kong fails the router build; we skip the route
            if not service.enabled:
                continue
        pairs.append((route, service))
    plugins = _build_plugins(index, certificates, previous, log)
    stream_router = StreamRouter(pairs, log) if settings.stream_listen else None
    return Snapshot(Router(pairs, log), services, balancers, version, certificates, plugins, stream_router)


def _build_balancers(index: ConfigIndex, settings: Settings, upstream_tls: UpstreamTlsGlobals) -> dict[str, Balancer]:
    """One ``Balancer`` per upstream entity, over its targets; the probe TLS of upstreams with ``https`` checks."""
    targets = index.children("targets", "upstream")
    balancers: dict[str, Balancer] = {}
    probe_tls = HealthcheckTlsCompiler(settings, index, globals_=upstream_tls)
    for upstream in index.rows("upstreams"):
        balancer = Balancer(upstream, targets.get(str(upstream["id"]), []))
        if ((upstream.get("healthchecks") or {}).get("active") or {}).get("type") == "https":
            balancer.probe_tls = probe_tls.profile(upstream)  # files and contexts here, never on the event loop
        balancers[upstream["name"]] = balancer
    probe_tls.finish()
    return balancers


def _build_plugins(
    index: ConfigIndex, certificates: CertificateIndex | None, previous: Snapshot | None, log: ErrorLog | None
) -> PluginIndex:
    """Plugin instances and per-route chains (``gateway.plugins.chains``), after the certificate index, which the
    certificate phase (mtls-auth's client-certificate request) precompiles its contexts from."""
    from gateway.plugins import BuildContext, PluginIndex

    build = BuildContext(
        index,
        log,
        certificate_index=certificates,
        previous=previous.plugins if previous is not None else None,
    )
    return PluginIndex.build(index, log, build)


def _build_certificates(
    index: ConfigIndex,
    settings: Settings,
    previous: Snapshot | None,
    server_tls: ServerTlsConfig | None,
    log: ErrorLog | None,
) -> CertificateIndex | None:
    """The downstream certificate index (only when some proxy listener terminates TLS)."""
    if server_tls is None:
        if not ssl_listeners(settings):
            return None
        server_tls = ServerTlsConfig.load(settings, log)
    return CertificateIndex.build(
        index.rows("certificates"),
        index.rows("snis"),
        server_tls.default_pairs,
        profile=server_tls.profile,
        log=log,
        previous=previous.certificates if previous is not None else None,
    )
