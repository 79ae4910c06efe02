"""What the master tells monitoring about the node: the ``/metrics`` scrape and the readiness facts.

A scrape (``Observer.scrape``) gathers every process's share of the counters: this process's when it serves the
traffic itself, else every ready worker's, asked over its channel with the ``stats`` message ``GET /status``
already uses (``WorkerPool.stats(metrics=True)``, bounded: a worker that does not answer in time counts in
``kong_nginx_metric_errors_total``). It adds what only the master knows (the datastore, the health of targets, the
certificates' expiry, the prometheus plugin instances of its snapshot) and renders through
``gateway.plugins.prometheus.exporter``.

Readiness (``routers_ready``): how many processes serving traffic have their first configuration snapshot live,
out of how many there should be, Kong's "router ready in n of N workers".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from gateway.observability.cert_expiry import ExpiryCache, expiry_samples
from gateway.observability.exposition import Samples
from gateway.plugins.prometheus import NAME
from gateway.plugins.prometheus.exporter import NodeFacts, exposition, process_share
from gateway.runtime import building
from gateway.settings import ConfigError, Settings
from gateway.store.interface import Row, Store
from gateway.version import KONG_VERSION

if TYPE_CHECKING:
    from gateway.proxy.state import ProxyState
    from gateway.runtime.workers import WorkerPool
    from gateway.tls.served.listener import ServerTlsConfig
    from gateway.upstream.healthcheck import HealthRegistry

__all__ = ["Gateway", "HealthSource", "Observer", "health_rows"]

SCRAPE_TIMEOUT = 2.0  # seconds a scrape waits for the workers' answers


def _certificate_rows(db: Store) -> list[Row]:
    rows: list[Row] = []
    dao = db.dao("certificates")
    offset: str | None = None
    while True:
        page, offset = dao.page(1000, offset, None)
        rows.extend(page)
        if offset is None:
            return rows


def _client_ssl_cert(settings: Settings) -> bytes | None:
    if not settings.client_ssl or not settings.client_ssl_cert:
        return None
    from gateway.tls.pem_settings import read_pem_setting

    try:
        return read_pem_setting("client_ssl_cert", settings.client_ssl_cert)
    except ConfigError:
        return None  # checked at start: it was readable then; a file removed since is not a certificate served


class _Named(Protocol):
    @property
    def name(self) -> str: ...


class HealthSource(Protocol):
    """What ``health_rows`` reads of ``gateway.upstream.healthcheck.HealthRegistry``: its balancers by upstream id
    and, per upstream, each target's addresses with their health (the view ``GET /upstreams/{u}/health`` shows)."""

    @property
    def balancers(self) -> Mapping[str, _Named]: ...

    def upstream_health(self, upstream_id: str) -> Mapping[str, Mapping[str, object]] | None: ...


def health_rows(health: HealthSource | None) -> list[tuple[str, str, str, str]]:
    """(upstream, target, address, state) for ``kong_upstream_target_health``, from the master's health registry."""
    rows: list[tuple[str, str, str, str]] = []
    if health is None:
        return rows
    for upstream_id, balancer in sorted(health.balancers.items(), key=lambda item: item[1].name):
        for target, info in (health.upstream_health(upstream_id) or {}).items():
            addresses = info.get("addresses")
            if not isinstance(addresses, list) or not addresses:
                rows.append((balancer.name, target, "", "dns_error"))
                continue
            for address in addresses:
                ip = str(address["ip"])
                host = f"[{ip}]" if ":" in ip else ip
                rows.append((balancer.name, target, f"{host}:{address['port']}", str(address["health"]).lower()))
    return rows


class Gateway(Protocol):
    """What the observer reads of the running gateway (``gateway.runtime.lifecycle.Gateway``, which owns the
    observer: named here so that only the owner imports the other)."""

    workers: WorkerPool | None  # with worker_processes > 1
    worker_count: int
    proxy_state: ProxyState | None  # None until the first snapshot is built
    db: Store | None  # None until the store is open
    settings: Settings
    server_tls: ServerTlsConfig | None  # with an ssl listener
    health: HealthRegistry | None

    @property
    def node_id(self) -> str: ...


class Observer:
    """The master's view for monitoring (one per ``Gateway``)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self._expiry = ExpiryCache()

    def routers_ready(self) -> tuple[int, int]:
        """(processes serving traffic with their first snapshot live, how many there should be)."""
        gateway = self.gateway
        if gateway.workers is not None:
            return gateway.workers.ready_count(), gateway.worker_count
        return (1 if gateway.proxy_state is not None else 0), 1

    async def _plugin_flags(self) -> tuple[bool, bool]:
        """(a prometheus instance is configured, one of them asks for ``upstream_health_metrics``), from the store:
        a master with workers builds no plugins of its own (``building.serves_traffic``), so its snapshot cannot say."""
        db = self.gateway.db
        if db is None:
            return False, False

        def read() -> tuple[bool, bool]:
            rows = [
                row
                for row in db.dao("plugins").all()
                if row.get("name") == NAME and row.get("enabled", True) is not False
            ]
            return bool(rows), any(bool((row.get("config") or {}).get("upstream_health_metrics")) for row in rows)

        return await db.run(read)

    async def _certificates(self) -> list[tuple[tuple[str, str], float]]:
        gateway = self.gateway
        db, settings, server_tls = gateway.db, gateway.settings, gateway.server_tls
        if db is None:
            return []
        key = (db.version, id(server_tls), settings.client_ssl, settings.client_ssl_cert)

        def compute() -> list[tuple[tuple[str, str], float]]:
            pairs = server_tls.default_pairs if server_tls is not None else ()
            return expiry_samples(_certificate_rows(db), pairs, bool(settings.ssl_cert), _client_ssl_cert(settings))

        samples = self._expiry.lookup(key)
        if samples is None:
            samples = await db.run(compute)
            self._expiry.store(key, samples)
        return samples

    async def _db_reachable(self) -> bool:
        db = self.gateway.db
        if db is None:
            return False
        try:
            await db.run(lambda: db.version)
        except Exception:  # any store failure is "unreachable", as Kong's connect() check
            return False
        return True

    async def scrape(self) -> bytes:
        """The text of ``GET /metrics``."""
        gateway = self.gateway
        shares: list[Samples] = []
        memory: list[tuple[int, int]] = []
        counters = building.proxy_counters(gateway.proxy_state)
        errors = 0
        pool = gateway.workers
        if pool is None:
            mine = process_share()
            shares.append(Samples.from_json(mine["samples"]))
            memory.append((int(mine["pid"]), int(mine["rss"])))
        else:
            expected = pool.ready_count()
            replies = await pool.stats(SCRAPE_TIMEOUT, metrics=True)
            errors = max(0, expected - len(replies))
            for reply in replies:
                building.add_counters(counters, reply)
                share = reply.get("metrics")
                if not isinstance(share, dict):
                    share = {}
                shares.append(Samples.from_json(share.get("samples")))
                pid, rss = share.get("pid"), share.get("rss")
                if isinstance(pid, int) and isinstance(rss, int):
                    memory.append((pid, rss))
        configured, with_health = await self._plugin_flags()
        facts = NodeFacts(
            node_id=gateway.node_id,
            version=KONG_VERSION,
            counters=counters,
            memory=sorted(memory),
            db_reachable=await self._db_reachable(),
            configured=configured,
            health=health_rows(gateway.health) if with_health else None,
            certificates=await self._certificates(),
            errors=errors,
        )
        return exposition(shares, facts)
