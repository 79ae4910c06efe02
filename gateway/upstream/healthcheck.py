"""Health checks: the per-upstream ``HealthChecker`` (active probes, passive circuit breaker) and its registry.

Theory of operation. Health outlives configuration: snapshots come and go with every Admin API write, but a
target's health, counters and probe timers must not. So the ``HealthRegistry`` (one per process, on the event loop)
keeps one ``HealthChecker`` per upstream id, and each checker one ``TargetHealth`` per ``(ip, port, hostname)``.
When a snapshot is installed (``install``), every balancer address is pointed at its ``TargetHealth``
(``Balancer.attach``): an unchanged target keeps its object, a new one starts healthy, a removed one is dropped;
a removed upstream's checker is stopped; a changed ``healthchecks`` record reconfigures the checker in place
(target states are kept, as lua-resty-healthcheck keeps them in its shm). ``close()`` stops everything.

Counting (lua-resty-healthcheck 3.1.0 ``incr_counter``, the rules Kong documents under "Health checks and circuit
breakers"): four 8-bit counters per target - successes, HTTP failures, TCP failures, timeouts. A success clears the
failure counters; a failure clears the success counter. A counter whose threshold is 0 is disabled. Reaching a
threshold sets the state to ``healthy``/``unhealthy``; a first failure of a healthy target makes it
``mostly_healthy`` (still serving), a first success of an unhealthy one ``mostly_unhealthy`` (still not serving).
Each increment logs ``[healthcheck] (<ws>:<upstream>) unhealthy TCP increment (1/3) for '<host>(<ip>:<port>)'``.

Active checks: per mode (``healthy``/``unhealthy`` interval, 0 = off, Kong's default), the targets currently in that
mode are probed (``gateway.upstream.probe``) in ``concurrency`` parallel work packages, at most once per interval, the
first round right away. As in Kong's http subsystem, ``tcp`` active checks are turned off, unless ``stream_listen``
is set: Kong runs them in its stream subsystem (``enable_tcp_probes``); ``grpc``/``grpcs`` checks are not run.
Passive checks count what the proxy observed (``Balancer.report_*``). An upstream "uses health checks" when an
active interval or a passive unhealthy threshold is non-zero; otherwise it has no checker and its targets are
``HEALTHCHECKS_OFF``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from gateway.observability.errorlog import ErrorLog
from gateway.upstream.balancer import Balancer
from gateway.upstream.checker import HealthChecker
from gateway.upstream.health import WORKSPACE, TargetHealth, uses_healthchecks

if TYPE_CHECKING:
    from gateway.upstream.dns import DnsCache

__all__ = ["HealthRegistry"]

#: how long ``install`` waits for the first DNS answers of name targets before swapping anyway
FIRST_RESOLUTION_TIMEOUT = 5.0


class HealthRegistry:
    """Every upstream's checker, kept in step with the installed snapshot (see the module docstring)."""

    def __init__(self, log: ErrorLog, dns: DnsCache, active: bool = True) -> None:
        self.log = log
        self.dns = dns
        #: False in a worker process: no probes here, the master's results arrive through ``apply_remote``
        self.active = active
        #: ``on_target(upstream_id, target)`` after a target's availability changed or was forced (the master
        #: pushes it to its workers)
        self.on_target: Any = None
        self.checkers: dict[str, HealthChecker] = {}
        #: upstream id -> the balancer of the installed snapshot
        self.balancers: dict[str, Balancer] = {}
        self._balancer_health: dict[str, bool] = {}
        self.closed = False

    async def install(self, snapshot: Any) -> None:
        """Attach health to ``snapshot``'s balancers (call on the loop *before* the snapshot goes live)."""
        balancers: Mapping[str, Balancer] = getattr(snapshot, "balancers", {}) or {}
        for balancer in balancers.values():
            balancer.seed(self.dns)
        pending = [b.refresh_dns(self.dns) for b in balancers.values() if b.unresolved()]
        if pending:
            try:
                async with asyncio.timeout(FIRST_RESOLUTION_TIMEOUT):
                    await asyncio.gather(*pending, return_exceptions=True)
            except TimeoutError:
                self.log.warn("[healthchecks] DNS resolution of upstream targets still pending; going live anyway")
        by_id: dict[str, Balancer] = {}
        retired: list[HealthChecker] = []
        for balancer in balancers.values():
            by_id[balancer.id] = balancer
            self._attach(balancer, retired)
        retired.extend(self.checkers.pop(u) for u in [u for u in self.checkers if u not in by_id])
        if retired:
            await asyncio.gather(*(c.stop() for c in retired), return_exceptions=True)
        self.balancers = by_id
        for upstream_id, balancer in by_id.items():
            checker = self.checkers.get(upstream_id)
            if checker is not None and not self.closed:
                self._balancer_health.setdefault(upstream_id, balancer.healthy())
                checker.start()

    def _attach(self, balancer: Balancer, retired: list[HealthChecker]) -> None:
        row = balancer.row
        checker = self.checkers.get(balancer.id)
        probe_tls = getattr(balancer, "probe_tls", None)
        if not uses_healthchecks(row):
            if checker is not None:
                retired.append(self.checkers.pop(balancer.id))
            balancer.attach(None)
            return
        if checker is None or checker.name != balancer.name:
            if checker is not None:
                retired.append(checker)
            checker = HealthChecker(row, probe_tls, self.log)
            checker.on_change = self._health_changed
            checker.active = self.active
            checker.on_target = self._target_changed
            self.checkers[balancer.id] = checker
            if probe_tls is not None:
                for level, text in probe_tls.notices:
                    self.log.log(level, text)
        elif checker.reconfigure(row, probe_tls) and probe_tls is not None:
            for level, text in probe_tls.notices:
                self.log.log(level, text)
        weighted = [a for a in balancer.addresses if a.weight > 0]
        balancer.attach(checker)
        for address in balancer.addresses:
            if address.weight <= 0:
                address.health = _OFF
        checker.retain({(a.ip, a.port, a.hostname) for a in weighted})

    def _health_changed(self, checker: HealthChecker) -> None:
        balancer = self.balancers.get(checker.upstream_id)
        if balancer is None:
            return
        healthy = balancer.healthy()
        if self._balancer_health.get(checker.upstream_id) != healthy:
            self._balancer_health[checker.upstream_id] = healthy
            status = "HEALTHY" if healthy else "UNHEALTHY"
            self.log.warn(
                f"[healthchecks] balancer {WORKSPACE}:{balancer.name} reported health status changed to {status}"
            )

    def _target_changed(self, checker: HealthChecker, health: TargetHealth) -> None:
        if self.on_target is not None:
            self.on_target(checker.upstream_id, health)

    def apply_remote(self, upstream_id: str, ip: str, port: int, hostname: str, healthy: bool) -> None:
        """A health result from the master (worker processes): the state is set and the counters cleared."""
        checker = self.checkers.get(upstream_id)
        health = checker.targets.get((ip, port, hostname)) if checker is not None else None
        if checker is None or health is None:
            return
        health.counters = [0, 0, 0, 0]
        checker._set_state(health, "healthy" if healthy else "unhealthy")

    def unavailable(self) -> list[tuple[str, TargetHealth]]:
        """Every tracked target that is not serving (a new worker process starts from these)."""
        return [
            (upstream_id, health)
            for upstream_id, checker in self.checkers.items()
            for health in checker.targets.values()
            if not health.available
        ]

    async def close(self) -> None:
        """Stop every checker (shutdown)."""
        self.closed = True
        checkers = list(self.checkers.values())
        self.checkers = {}
        await asyncio.gather(*(c.stop() for c in checkers), return_exceptions=True)

    # ------------------------------------------------------------------ Admin API views
    def upstream_health(self, upstream_id: str) -> dict[str, dict[str, Any]] | None:
        """Kong's ``get_upstream_health``: target ``name:port`` -> status with per-address health; None when the
        installed snapshot has no balancer for this upstream."""
        balancer = self.balancers.get(upstream_id)
        if balancer is None:
            return None
        using = upstream_id in self.checkers
        out: dict[str, dict[str, Any]] = {}
        for target in balancer.targets:
            total = sum(a.weight for a in target.addresses)
            unavailable = sum(a.weight for a in target.addresses if not a.health.available)
            addresses = []
            for address in target.addresses:
                if using and target.weight > 0:
                    health = "HEALTHY" if address.health.available else "UNHEALTHY"
                else:
                    health = "HEALTHCHECKS_OFF"
                addresses.append({"ip": address.ip, "port": address.port, "weight": address.weight, "health": health})
            out[target.key] = {
                "host": target.name,
                "port": target.port,
                "dns": target.dns_source,
                "nodeWeight": target.weight,
                "weight": {"total": total, "unavailable": unavailable, "available": total - unavailable},
                "addresses": addresses,
            }
        return out

    def balancer_health(self, upstream_id: str) -> dict[str, Any] | None:
        """Kong's ``get_balancer_health`` (``GET /upstreams/{u}/health?balancer_health=1``)."""
        balancer = self.balancers.get(upstream_id)
        if balancer is None:
            return None
        healthy = balancer.healthy()
        total = sum(a.weight for a in balancer.addresses)
        unavailable = sum(a.weight for a in balancer.addresses if not a.health.available)
        hosts = list((self.upstream_health(upstream_id) or {}).values())
        details = {
            "healthy": healthy,
            "weight": {"total": total, "unavailable": unavailable, "available": total - unavailable},
            "hosts": hosts,
        }
        for host in hosts:
            for address in host["addresses"]:
                address["healthy"] = address.pop("health") != "UNHEALTHY"
        balancer_health = "HEALTHY" if healthy else "UNHEALTHY"
        return {
            "health": balancer_health if upstream_id in self.checkers else "HEALTHCHECKS_OFF",
            "balancer_health": balancer_health,
            "id": upstream_id,
            "details": details,
        }

    def post_health(self, upstream_id: str, name: str, port: int, ip: str | None, healthy: bool) -> str | None:
        """Kong's ``post_health``: force the health of one address (``ip`` given) or of every address of the
        target ``name:port``. Returns an error message (answered 400), or None."""
        balancer = self.balancers.get(upstream_id)
        checker = self.checkers.get(upstream_id)
        if balancer is None:
            return f"Upstream {upstream_id} has no balancer"
        if checker is None:
            return f"no healthchecker found for {balancer.name}"
        for health in list(checker.targets.values()):
            if health.hostname == name and health.port == port and (ip is None or health.ip == ip):
                checker.set_target_status(health, healthy)
        return None


class _Off:
    """The health of a weight-0 address: never picked, shown as HEALTHCHECKS_OFF."""

    __slots__ = ()
    available = True
    state = "healthy"


_OFF: Any = _Off()
