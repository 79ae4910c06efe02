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
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from gateway.entities.upstreams import HEALTHCHECKS_DEFAULTS
from gateway.observability.errorlog import ErrorLog
from gateway.upstream.probe import ProbeResult, probe

if TYPE_CHECKING:
    from gateway.tls.upstream.probes import ProbeTls
    from gateway.upstream.balancer import Address, Balancer
    from gateway.upstream.dns import DnsCache

__all__ = ["HealthChecker", "HealthRegistry", "TargetHealth", "enable_tcp_probes", "uses_healthchecks"]

WORKSPACE = "default"
#: how long ``install`` waits for the first DNS answers of name targets before swapping anyway
FIRST_RESOLUTION_TIMEOUT = 5.0
_COUNTER_NAMES = ("SUCCESS", "HTTP", "TCP", "TIMEOUT")
SUCCESS, HTTP, TCP, TIMEOUT = range(4)
#: the active check types probed in this process (grpc/grpcs: not reproduced)
_ACTIVE_TYPES = {"http", "https"}


def enable_tcp_probes() -> None:
    """Probe ``tcp`` active checks too: the process serves Kong's stream subsystem (``stream_listen``)."""
    _ACTIVE_TYPES.add("tcp")


def _merge(defaults: Mapping[str, Any], value: Any) -> dict[str, Any]:
    out = dict(defaults)
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(out.get(key), Mapping) and isinstance(item, Mapping):
                out[key] = _merge(out[key], item)
            elif item is not None:
                out[key] = item
    return out


def checks_of(upstream: Mapping[str, Any]) -> dict[str, Any]:
    """The upstream's ``healthchecks`` with Kong's defaults filled in."""
    return _merge(HEALTHCHECKS_DEFAULTS, upstream.get("healthchecks"))


def uses_healthchecks(upstream: Mapping[str, Any]) -> bool:
    """Kong's ``is_upstream_using_healthcheck``."""
    checks = checks_of(upstream)
    active, passive = checks["active"], checks["passive"]["unhealthy"]
    return bool(
        active["healthy"]["interval"]
        or active["unhealthy"]["interval"]
        or passive["tcp_failures"]
        or passive["timeouts"]
        or passive["http_failures"]
    )


class TargetHealth:
    """The health of one ``(ip, port, hostname)`` of an upstream, shared by every snapshot's address for it."""

    __slots__ = ("available", "counters", "host_header", "hostname", "ip", "port", "state", "tracked")

    def __init__(self, ip: str, port: int, hostname: str, host_header: str | None) -> None:
        self.ip = ip
        self.port = port
        self.hostname = hostname
        self.host_header = host_header
        self.state = "healthy"
        #: what the balancer reads on every pick
        self.available = True
        self.counters = [0, 0, 0, 0]
        self.tracked = True

    @property
    def label(self) -> str:
        return f"{self.hostname}({self.ip}:{self.port})"


class _Checks:
    """The ``healthchecks`` record as the checker uses it (sets for status lists, the headers serialised)."""

    def __init__(self, checks: Mapping[str, Any]) -> None:
        active, passive = checks["active"], checks["passive"]
        self.raw = checks
        self.active_type: str = active["type"]
        self.timeout = float(active["timeout"])
        self.concurrency = max(1, int(active["concurrency"]))
        self.http_path: str = active["http_path"] or "/"
        self.https_sni: str | None = active.get("https_sni")
        self.verify = bool(active["https_verify_certificate"])
        self.headers = _headers(active.get("headers"))
        runs = self.active_type in _ACTIVE_TYPES
        self.intervals = {
            "healthy": float(active["healthy"]["interval"]) if runs else 0.0,
            "unhealthy": float(active["unhealthy"]["interval"]) if runs else 0.0,
        }
        self.modes: dict[str, dict[str, Any]] = {}
        for name, mode in (("active", active), ("passive", passive)):
            self.modes[name] = {
                "type": mode["type"],
                "healthy_statuses": frozenset(mode["healthy"]["http_statuses"] or ()),
                "successes": int(mode["healthy"]["successes"]),
                "unhealthy_statuses": frozenset(mode["unhealthy"]["http_statuses"] or ()),
                "tcp_failures": int(mode["unhealthy"]["tcp_failures"]),
                "timeouts": int(mode["unhealthy"]["timeouts"]),
                "http_failures": int(mode["unhealthy"]["http_failures"]),
            }


def _headers(value: Any) -> str:
    """``headers`` (a map of name -> list of values) as request lines (lua-resty-healthcheck's serialisation)."""
    if not isinstance(value, Mapping):
        return ""
    lines: list[str] = []
    for name, values in value.items():
        for item in values if isinstance(values, list | tuple) else [values]:
            lines.append(f"{name}: {item}")
    return "".join(line + "\r\n" for line in lines)


class HealthChecker:
    """Health of one upstream's targets: counters, states, probe loops. Lives across snapshots."""

    def __init__(self, upstream: Mapping[str, Any], probe_tls: ProbeTls | None, log: ErrorLog) -> None:
        self.upstream_id = str(upstream.get("id") or "")
        self.name = str(upstream["name"])
        self.log = log
        self.prefix = f"[healthcheck] ({WORKSPACE}:{self.name}) "
        self.targets: dict[tuple[str, int, str], TargetHealth] = {}
        self.checks = _Checks(checks_of(upstream))
        self.probe_tls = probe_tls
        self.host_header: str | None = upstream.get("host_header")
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._identity: tuple[Any, ...] = self._config_identity(upstream, probe_tls)
        self.on_change: Any = None  # called after a target turns healthy/unhealthy (the registry's balancer log)
        #: called with (checker, target) when a target's availability changes or is forced (pushed to workers)
        self.on_target: Any = None
        #: False in worker processes: the master probes, workers take its results over the channel
        self.active = True
        self.rounds = 0  # completed active rounds (tests and debugging)

    @staticmethod
    def _config_identity(upstream: Mapping[str, Any], probe_tls: ProbeTls | None) -> tuple[Any, ...]:
        return (
            repr(checks_of(upstream)),
            upstream.get("host_header"),
            probe_tls.identity if probe_tls is not None else None,
        )

    # ------------------------------------------------------------------ configuration
    def reconfigure(self, upstream: Mapping[str, Any], probe_tls: ProbeTls | None) -> bool:
        """Apply a changed ``healthchecks``/``host_header``/probe TLS; True if something changed (loops restart)."""
        identity = self._config_identity(upstream, probe_tls)
        if identity == self._identity:
            return False
        self._identity = identity
        self.checks = _Checks(checks_of(upstream))
        self.probe_tls = probe_tls
        self.host_header = upstream.get("host_header")
        for health in self.targets.values():
            health.host_header = self.host_header
        self._stop_tasks()
        self.start()
        return True

    def track(self, address: Address, host_header: str | None) -> TargetHealth:
        """The health of an address (Kong's ``add_target``: a new target starts healthy)."""
        key = (address.ip, address.port, address.hostname)
        health = self.targets.get(key)
        if health is None:
            health = TargetHealth(address.ip, address.port, address.hostname, host_header)
            self.targets[key] = health
            if self.log.debug_enabled:
                self.log.debug(f"{self.prefix}event: target added '{health.label}'")
        return health

    def untrack(self, address: Address) -> None:
        health = self.targets.pop((address.ip, address.port, address.hostname), None)
        if health is not None:
            health.tracked = False

    def retain(self, keys: set[tuple[str, int, str]]) -> None:
        """Forget every target not in ``keys`` (a snapshot removed it)."""
        for key in [k for k in self.targets if k not in keys]:
            self.targets.pop(key).tracked = False

    # ------------------------------------------------------------------ counting
    def _incr(self, health: Any, report: str, limit: int, counter: int) -> None:
        if limit == 0 or not isinstance(health, TargetHealth) or not health.tracked:
            return
        current = health.state
        if report == current:
            return  # nothing to count towards the state the target is already fully in
        counters = health.counters
        counters[counter] = min(255, counters[counter] + 1)
        value = counters[counter]
        self.log.warn(
            f"{self.prefix}{report} {_COUNTER_NAMES[counter]} increment ({value}/{limit}) for '{health.label}'"
        )
        if counter == SUCCESS:
            counters[HTTP] = counters[TCP] = counters[TIMEOUT] = 0
        else:
            counters[SUCCESS] = 0
        new: str | None = None
        if value >= limit:
            new = report
        elif current == "healthy" and (counters[HTTP] or counters[TCP] or counters[TIMEOUT]):
            new = "mostly_healthy"
        elif current == "unhealthy" and counters[SUCCESS]:
            new = "mostly_unhealthy"
        if new is not None and new != current:
            self._set_state(health, new)

    def _set_state(self, health: TargetHealth, state: str) -> None:
        before = health.available
        health.state = state
        if state in ("healthy", "unhealthy"):
            health.available = state == "healthy"
        if self.log.debug_enabled:
            after = health.available
            self.log.debug(f"{self.prefix}event: target status '{health.label}' from '{before}' to '{after}'")
        if health.available != before:
            if self.on_change is not None:
                self.on_change(self)
            if self.on_target is not None:
                self.on_target(self, health)

    def report_success(self, health: Any, check: str) -> None:
        self._incr(health, "healthy", self.checks.modes[check]["successes"], SUCCESS)

    def report_http_status(self, health: Any, status: int, check: str) -> None:
        mode = self.checks.modes[check]
        if status in mode["healthy_statuses"]:
            self._incr(health, "healthy", mode["successes"], SUCCESS)
        elif status in mode["unhealthy_statuses"] or status == 0:
            self._incr(health, "unhealthy", mode["http_failures"], HTTP)

    def report_tcp_failure(self, health: Any, check: str) -> None:
        self._incr(health, "unhealthy", self.checks.modes[check]["tcp_failures"], TCP)

    def report_timeout(self, health: Any, check: str) -> None:
        self._incr(health, "unhealthy", self.checks.modes[check]["timeouts"], TIMEOUT)

    def set_target_status(self, health: TargetHealth, healthy: bool) -> None:
        """Forced by the Admin API: the state is set and the counters cleared."""
        health.counters = [0, 0, 0, 0]
        report = "healthy" if healthy else "unhealthy"
        before = health.available
        self._set_state(health, report)
        if health.available == before and self.on_target is not None:
            self.on_target(self, health)  # forced to what it already was here: workers may differ, tell them
        self.log.warn(f"{self.prefix}{report} forced for {health.hostname} {health.ip}:{health.port}")

    # ------------------------------------------------------------------ active checks
    def start(self) -> None:
        """Start the probe loops of the modes whose interval is non-zero (on the running loop)."""
        if not self.active:
            return
        loop = asyncio.get_running_loop()
        for mode, interval in self.checks.intervals.items():
            if interval > 0 and mode not in self._tasks:
                self._tasks[mode] = loop.create_task(self._run(mode, interval), name=f"healthcheck {self.name} {mode}")

    def _stop_tasks(self) -> list[asyncio.Task[None]]:
        tasks = list(self._tasks.values())
        self._tasks = {}
        for task in tasks:
            task.cancel()
        return tasks

    async def stop(self) -> None:
        """Stop the probe loops and wait for them (probes in flight are cancelled and their sockets closed)."""
        tasks = self._stop_tasks()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self.log.debug_enabled:
            self.log.debug(f"{self.prefix}healthchecker stopped")

    async def _run(self, mode: str, interval: float) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            wanted = ("healthy", "mostly_healthy") if mode == "healthy" else ("unhealthy", "mostly_unhealthy")
            todo = [h for h in self.targets.values() if h.state in wanted]
            if todo:
                try:
                    await self.check_targets(todo)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # a bug must not kill the loop silently
                    self.log.error(f"{self.prefix}active check failed: {exc!r}")
            elif self.log.debug_enabled:
                self.log.debug(f"{self.prefix}checking {mode} targets: nothing to do")
            self.rounds += 1
            await asyncio.sleep(max(0.0, started + interval - loop.time()))

    async def check_targets(self, targets: Sequence[TargetHealth]) -> None:
        """One round: ``concurrency`` work packages in parallel, each probing its targets in turn."""
        packages: list[list[TargetHealth]] = [[] for _ in range(min(self.checks.concurrency, len(targets)))]
        for i, health in enumerate(targets):
            packages[i % len(packages)].append(health)
        await asyncio.gather(*(self._work(package) for package in packages))

    async def _work(self, package: Sequence[TargetHealth]) -> None:
        for health in package:
            await self.check_one(health)

    async def check_one(self, health: TargetHealth) -> None:
        checks = self.checks
        host_header = health.host_header or health.hostname
        kind = checks.active_type
        tls = self.probe_tls
        result: ProbeResult = await probe(
            kind,
            health.ip,
            health.port,
            health.hostname,
            host_header,
            timeout=checks.timeout,
            http_path=checks.http_path,
            headers=checks.headers,
            context=tls.context if tls is not None and kind == "https" else None,
            sni=checks.https_sni or host_header,
            verify=checks.verify,
        )
        if result.log:
            self.log.error(f"{self.prefix}{result.log}, context: ngx.timer")
        if not health.tracked:
            return
        if result.outcome == "success":
            self.report_success(health, "active")
        elif result.outcome == "status":
            self.report_http_status(health, result.status, "active")
        elif result.outcome == "timeout":
            self.report_timeout(health, "active")
        else:
            self.report_tcp_failure(health, "active")


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
