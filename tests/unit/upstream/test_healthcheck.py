"""Health checkers without nginx: counting rules, the registry across snapshots, probes against loopback servers."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from gateway.observability.errorlog import ErrorLog
from gateway.tls.engine.x509 import TrustStore
from gateway.tls.upstream.probes import PROBE_CONTEXTS
from gateway.upstream.balancer import Balancer
from gateway.upstream.checker import HealthChecker
from gateway.upstream.dns import DnsCache
from gateway.upstream.health import TargetHealth, uses_healthchecks
from gateway.upstream.healthcheck import HealthRegistry
from gateway.upstream.probe import probe
from tests.fixtures.ports import closed_port


def _log() -> tuple[ErrorLog, io.StringIO]:
    stream = io.StringIO()
    return ErrorLog(None, "debug", stream=stream), stream


def _upstream(name: str = "up", upstream_id: str | None = None, **checks: Any) -> dict[str, Any]:
    return {"id": upstream_id or str(uuid.uuid4()), "name": name, "healthchecks": checks}


def _target(target: str, weight: int = 100) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "target": target, "weight": weight, "created_at": 1}


class _Snap:
    def __init__(self, *balancers: Balancer) -> None:
        self.balancers = {b.name: b for b in balancers}


PASSIVE_2_TCP: dict[str, Any] = {
    "passive": {"unhealthy": {"tcp_failures": 2, "http_failures": 1}, "healthy": {"successes": 1}}
}


def test_uses_healthchecks_is_kongs_rule() -> None:
    assert not uses_healthchecks(_upstream())
    assert uses_healthchecks(_upstream(active={"healthy": {"interval": 1}}))
    assert uses_healthchecks(_upstream(passive={"unhealthy": {"timeouts": 1}}))


def test_counters_thresholds_and_intermediate_states() -> None:
    log, stream = _log()
    checker = HealthChecker(_upstream(**PASSIVE_2_TCP), None, log)
    balancer = Balancer(_upstream(), [_target("10.0.0.1:80")])
    health = checker.track(balancer.addresses[0], None)
    checker.report_tcp_failure(health, "passive")
    assert health.state == "mostly_healthy" and health.available
    assert "unhealthy TCP increment (1/2) for '10.0.0.1(10.0.0.1:80)'" in stream.getvalue()
    checker.report_tcp_failure(health, "passive")
    assert health.state == "unhealthy" and not health.available
    checker.report_http_status(health, 200, "passive")  # successes threshold 1
    assert health.state == "healthy" and health.available and health.counters == [1, 0, 0, 0]
    checker.report_http_status(health, 500, "passive")  # http_failures 1
    assert not health.available
    checker.report_http_status(health, 418, "passive")  # in neither list: ignored
    assert not health.available
    checker.set_target_status(health, True)
    assert health.available and health.counters == [0, 0, 0, 0]
    assert "healthy forced for 10.0.0.1 10.0.0.1:80" in stream.getvalue()


def test_a_zero_threshold_disables_its_counter() -> None:
    log, _ = _log()
    checker = HealthChecker(_upstream(passive={"unhealthy": {"timeouts": 1}}), None, log)
    health = checker.track(Balancer(_upstream(), [_target("10.0.0.1:80")]).addresses[0], None)
    for _ in range(5):
        checker.report_tcp_failure(health, "passive")
    assert health.state == "healthy"
    checker.report_timeout(health, "passive")
    assert health.state == "unhealthy"


async def test_registry_keeps_health_across_snapshots_and_drops_what_is_removed() -> None:
    log, stream = _log()
    registry = HealthRegistry(log, DnsCache())
    up = _upstream("svc", **PASSIVE_2_TCP)
    first = Balancer(up, [_target("10.0.0.1:80"), _target("10.0.0.2:80")])
    await registry.install(_Snap(first))
    checker = registry.checkers[up["id"]]
    handle = first.new_handle(None)
    address = first.get_peer(handle)
    first.report_tcp_failure(handle)
    first.report_tcp_failure(handle)
    assert not address.health.available
    # a rebuild (any Admin API write) with the same target: same health object, still unhealthy
    second = Balancer(up, [_target(f"{address.ip}:80"), _target("10.0.0.3:80")])
    await registry.install(_Snap(second))
    assert registry.checkers[up["id"]] is checker
    kept = next(a for a in second.addresses if a.ip == address.ip)
    assert kept.health is address.health and not kept.health.available
    assert {k[0] for k in checker.targets} == {address.ip, "10.0.0.3"}  # the removed target is forgotten
    health = registry.upstream_health(up["id"])
    assert health is not None
    assert health[f"{address.ip}:80"]["addresses"][0]["health"] == "UNHEALTHY"
    assert registry.post_health(up["id"], address.ip, 80, None, True) is None
    assert kept.health.available
    # the upstream is removed: its checker stops
    await registry.install(_Snap())
    assert registry.checkers == {}
    await registry.close()
    assert "event: target added" in stream.getvalue()


async def test_without_health_checks_targets_are_off_and_posting_health_fails() -> None:
    log, _ = _log()
    registry = HealthRegistry(log, DnsCache())
    up = _upstream("plain")
    balancer = Balancer(up, [_target("10.0.0.1:80"), _target("10.0.0.2:80", weight=0)])
    await registry.install(_Snap(balancer))
    info = registry.upstream_health(up["id"])
    assert info is not None
    assert info["10.0.0.1:80"]["addresses"][0]["health"] == "HEALTHCHECKS_OFF"
    assert registry.post_health(up["id"], "10.0.0.1", 80, None, False) == "no healthchecker found for plain"
    bh = registry.balancer_health(up["id"])
    assert bh is not None and bh["health"] == "HEALTHCHECKS_OFF" and bh["balancer_health"] == "HEALTHY"


# ------------------------------------------------------------------------------------------------ probes
@pytest.fixture
async def http_server() -> AsyncIterator[Callable[[bytes], Any]]:
    servers: list[asyncio.Server] = []
    seen: list[bytes] = []

    async def start(answer: bytes) -> tuple[int, list[bytes]]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            seen.append(await reader.readuntil(b"\r\n\r\n"))
            writer.write(answer)
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        return server.sockets[0].getsockname()[1], seen

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def test_http_probe_sends_kongs_request_and_reads_the_status(http_server: Any) -> None:
    port, seen = await http_server(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
    result = await probe(
        "http", "127.0.0.1", port, "backend", "api.test", timeout=2, http_path="/status", headers="X-A: 1\r\n"
    )
    assert (result.outcome, result.status) == ("status", 503)
    assert seen[0] == b"GET /status HTTP/1.0\r\nX-A: 1\r\nHost: api.test\r\n\r\n"


async def test_bad_status_line_is_status_zero(http_server: Any) -> None:
    port, _ = await http_server(b"garbage\r\n")
    result = await probe("http", "127.0.0.1", port, "h", "h", timeout=2)
    assert result.status == 0 and result.log == "bad status line from 'h (127.0.0.1:" + str(port) + ")': garbage"


async def test_tcp_and_connect_failures() -> None:
    port = closed_port()
    assert (await probe("tcp", "127.0.0.1", port, "h", "h", timeout=1)).outcome == "tcp"
    assert (await probe("http", "127.0.0.1", port, "h", "h", timeout=1)).outcome == "tcp"


async def test_https_probe_against_plain_http_is_a_tcp_failure_with_kongs_line() -> None:
    async def plain_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)  # a ClientHello: answer like an HTTP server does (400) and close
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(plain_http, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    context = PROBE_CONTEXTS.get(1, TrustStore.system_store(), None)
    try:
        result = await probe("https", "127.0.0.1", port, "backend", "backend", timeout=2, context=context, sni="s.test")
    finally:
        server.close()
    assert result.outcome == "tcp"
    where = f"'backend (127.0.0.1:{port})'"
    assert result.log == f"failed SSL handshake with {where}, using server name (sni) 's.test': handshake failed"


async def test_active_round_marks_a_closed_port_unhealthy_and_logs() -> None:
    log, stream = _log()
    registry = HealthRegistry(log, DnsCache())
    port = closed_port()
    up = _upstream("act", active={"type": "http", "healthy": {"interval": 0.05}, "unhealthy": {"tcp_failures": 1}})
    balancer = Balancer(up, [_target(f"127.0.0.1:{port}")])
    await registry.install(_Snap(balancer))
    health = balancer.addresses[0].health
    assert isinstance(health, TargetHealth)
    async with asyncio.timeout(5):
        while health.available:
            await asyncio.sleep(0.01)
    await registry.close()
    assert f"[healthcheck] (default:act) unhealthy TCP increment (1/1) for '127.0.0.1(127.0.0.1:{port})'" in (
        stream.getvalue()
    )
    assert "[healthchecks] balancer default:act reported health status changed to UNHEALTHY" in stream.getvalue()
    assert all(task.done() for task in asyncio.all_tasks() if task.get_name().startswith("healthcheck"))
