"""One upstream's health checker: counters and states of its targets, and its active probe loops.

Lives across snapshots (the registry in ``healthcheck`` keeps one per upstream id); the counting rules are
lua-resty-healthcheck's, described in ``healthcheck``'s docstring.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from gateway.observability.errorlog import ErrorLog
from gateway.upstream.health import (
    COUNTER_NAMES,
    HTTP,
    SUCCESS,
    TCP,
    TIMEOUT,
    WORKSPACE,
    Checks,
    TargetHealth,
    checks_of,
)
from gateway.upstream.probe import ProbeResult, probe
from gateway.upstream.targets import Address

if TYPE_CHECKING:
    from gateway.tls.upstream.probes import ProbeTls

__all__ = ["HealthChecker"]


class HealthChecker:
    """Health of one upstream's targets: counters, states, probe loops. Lives across snapshots."""

    def __init__(self, upstream: Mapping[str, Any], probe_tls: ProbeTls | None, log: ErrorLog) -> None:
        self.upstream_id = str(upstream.get("id") or "")
        self.name = str(upstream["name"])
        self.log = log
        self.prefix = f"[healthcheck] ({WORKSPACE}:{self.name}) "
        self.targets: dict[tuple[str, int, str], TargetHealth] = {}
        self.checks = Checks(checks_of(upstream))
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
        self.checks = Checks(checks_of(upstream))
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
            f"{self.prefix}{report} {COUNTER_NAMES[counter]} increment ({value}/{limit}) for '{health.label}'"
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
