"""Fixtures of the balancer tests: real nginx targets (restartable on their ports), a real gateway, health polling.

Every wait is bounded and event-driven: a port that accepts, a log line that appeared, a health state the Admin API
reports; the small sleeps between polls are back-offs, never stand-ins for readiness.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.gateway_process import GatewayProcess, make_gateway
from tests.fixtures.nginx import NginxRunner, NginxServer, nginx, nginx_binary
from tests.fixtures.ports import closed_port, wait_for_port
from tests.integration.tls.upstream.kong import KongClient
from tests.integration.tls.upstream.pki import Pki

__all__ = ["nginx"]  # the nginx fixture, re-exported for this package's tests

HEALTH_TIMEOUT = 10.0


@pytest.fixture(scope="session")
def pki() -> Pki:
    return Pki.build()


def restart(server: NginxServer) -> None:
    """Start a stopped nginx again with its own prefix and configuration (same ports)."""
    binary = nginx_binary()
    assert binary is not None
    with open(server.prefix / "stderr.log", "ab") as stderr:
        server.proc = subprocess.Popen(
            [
                binary,
                "-p",
                str(server.prefix),
                "-c",
                str(server.prefix / "nginx.conf"),
                "-g",
                "daemon off; error_log stderr;",
            ],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    for port in server.ports:
        wait_for_port(port, alive=lambda: server.proc.poll() is None)


def plain_target(runner: NginxRunner, name: str) -> NginxServer:
    """An nginx answering ``<name>`` on one loopback port."""
    body = 'server { listen 127.0.0.1:{port}; location / { return 200 "NAME"; } }'
    return runner.start(body.replace("NAME", name))


class Gateway:
    """A started gateway and its Kong-like client (Admin writes wait until the proxy runs them)."""

    def __init__(self, process: GatewayProcess) -> None:
        self.process = process
        self.kong = KongClient(process)

    def health(self, upstream: str, **query: str) -> dict[str, Any]:
        res = self.kong.admin.get(f"/upstreams/{upstream}/health", params=query)
        assert res.status_code == 200, res.text
        body: dict[str, Any] = res.json()
        return body

    def target_health(self, upstream: str, target: str) -> str | None:
        for row in self.health(upstream)["data"]:
            if row["target"] == target:
                return str(row.get("health"))
        return None

    def wait_health(self, upstream: str, target: str, expected: str, timeout: float = HEALTH_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        seen = None
        while time.monotonic() < deadline:
            seen = self.target_health(upstream, target)
            if seen == expected:
                return
            time.sleep(0.02)
        log = self.process.error_log.read_text()[-4000:]
        raise AssertionError(f"{upstream}/{target} stayed {seen}, never {expected}:\n{log}")

    def route(self, name: str, upstream_host: str, protocol: str = "http", **service: Any) -> None:
        """A service ``<protocol>://<upstream_host>`` and a route on ``/<name>`` (path stripped)."""
        self.kong.post("/services", {"name": name, "protocol": protocol, "host": upstream_host, "port": 80, **service})
        self.kong.post(f"/services/{name}/routes", {"name": name, "paths": [f"/{name}"]})


@pytest.fixture
def gateway_factory(tmp_path: Path) -> Iterator[Any]:
    started: list[Gateway] = []

    def start(extra_env: dict[str, str] | None = None) -> Gateway:
        # loopback only: a name that is not in the hosts file is asked of a closed local port (a fast DNS error)
        env = {"KONG_LOG_LEVEL": "debug", "KONG_DNS_RESOLVER": f"127.0.0.1:{closed_port()}", **(extra_env or {})}
        process = make_gateway(tmp_path / f"gw{len(started)}", env).start()
        gateway = Gateway(process)
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        gateway.kong.close()
        gateway.process.stop()
