"""The reproducer of "an upstream that accepts and closes at once hangs the request", against the real process.

The upstream is another process (``accept()`` then ``close()``), so its close races the gateway's connect the way a
real one does; the gateway runs with two workers, as by default on two cores. Each request must get Kong's 502 at
once with its error and access-log lines, nothing may reach stderr, and the workers' descriptors and the
``connections_*`` counters must come back to where they were.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.fixtures.gateway_process import GatewayProcess, make_gateway
from tests.integration.runtime.test_workers import fresh_get, status, wait_until

pytestmark = pytest.mark.timeout(120)

ACCEPT_AND_CLOSE = """
import socket, sys
server = socket.create_server(("127.0.0.1", 0), backlog=512)
print(server.getsockname()[1], flush=True)
while True:
    conn, _ = server.accept()
    conn.close()
"""
REQUESTS = 200


@pytest.fixture
def closing_upstream() -> Iterator[int]:
    proc = subprocess.Popen([sys.executable, "-c", ACCEPT_AND_CLOSE], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield int(proc.stdout.readline())
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def gateway(tmp_path: pathlib.Path) -> Iterator[GatewayProcess]:
    gw = make_gateway(tmp_path, {"KONG_WORKER_PROCESSES": "2"}).start()
    try:
        yield gw
    finally:
        assert gw.stop() == 0


def _fds(pids: list[int]) -> int:
    return sum(len(list(pathlib.Path(f"/proc/{pid}/fd").iterdir())) for pid in pids)


def _held(gw: GatewayProcess) -> tuple[int, int]:
    server: dict[str, Any] = status(gw)["server"]
    return server["connections_active"], server["connections_writing"]


def _settles(measure: Callable[[], Any], baseline: Any, what: str) -> None:
    """Bounded wait until ``measure()`` is back at ``baseline`` (closing sockets takes a loop turn or two)."""
    try:
        wait_until(lambda: measure() == baseline, timeout=10, what=what)
    except AssertionError:
        raise AssertionError(f"{what}: {measure()} != baseline {baseline}") from None


def test_accept_then_close_answers_502_at_once_and_leaks_nothing(
    gateway: GatewayProcess, closing_upstream: int
) -> None:
    admin = gateway.admin_url
    reply = httpx.post(
        f"{admin}/services",
        json={"name": "closer", "url": f"http://127.0.0.1:{closing_upstream}/", "read_timeout": 2000},
    )
    assert reply.status_code == 201, reply.text
    reply = httpx.post(f"{admin}/services/closer/routes", json={"paths": ["/c"]})
    assert reply.status_code == 201, reply.text
    workers = [vm["pid"] for vm in status(gateway)["memory"]["workers_lua_vms"]]
    assert len(workers) == 2

    assert fresh_get(gateway.proxy_port, "/c")[0] == 502  # warm-up: logs opened, pools created
    fds_before, held_before = _fds(workers), _held(gateway)

    started = time.monotonic()
    curl = subprocess.run(
        ["curl", "-s", "-m", "30", "-o", "/dev/null", "-w", "%{http_code}", f"{gateway.proxy_url}/c"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (curl.returncode, curl.stdout) == (0, "502"), curl
    assert time.monotonic() - started < 5
    codes = [fresh_get(gateway.proxy_port, "/c")[0] for _ in range(REQUESTS)]
    assert codes == [502] * REQUESTS

    _settles(lambda: _fds(workers), fds_before, "open descriptors of the workers")
    _settles(lambda: _held(gateway), held_before, "connections_active / connections_writing")
    assert gateway.stop() == 0  # the workers buffer their access log lines until they exit
    access = gateway.access_log.read_text()
    assert access.count('"GET /c HTTP/1.1" 502 ') == REQUESTS + 2
    log = gateway.error_log.read_text()
    assert "while reading response header from upstream" in log or "while connecting to upstream" in log
    assert "[alert]" not in log and "Traceback" not in log, log
    output = gateway.drain_output()
    assert "Traceback" not in output and "Exception" not in output, output
