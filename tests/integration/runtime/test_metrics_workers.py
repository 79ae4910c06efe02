"""``/metrics`` and ``/status/ready`` with two worker processes: the master answers for the node, summing what each
worker counted (asked over its channel), and is ready only once every worker has loaded its configuration."""

from __future__ import annotations

import pathlib
import re
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.fixtures.gateway_process import GatewayProcess, make_gateway
from tests.fixtures.metrics import scrape
from tests.fixtures.ports import closed_port, free_port

WORKERS = {"KONG_WORKER_PROCESSES": "2", "KONG_DATABASE": "off"}
KONG_YML = """
_format_version: "3.0"
services:
- name: down
  url: http://127.0.0.1:{port}/
  retries: 0
  routes:
  - name: r-down
    paths: ["/down"]
plugins:
- name: prometheus
  config:
    status_code_metrics: true
    latency_metrics: true
"""
PID_LINE = re.compile(r"\[error\] (\d+)#0: \*\d+ connect\(\) failed")


class ReadyProbe:
    """Polls ``/status/ready`` from before the gateway starts until it answers 200 (bounded), keeping the answers."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url
        self.answers: list[tuple[int, str]] = []
        self.deadline = time.monotonic() + timeout
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with httpx.Client(timeout=2) as client:
            while time.monotonic() < self.deadline:
                try:
                    answer = client.get(self.url)
                except httpx.TransportError:
                    time.sleep(0.002)  # not listening yet: the next try is the readiness check itself
                    continue
                self.answers.append((answer.status_code, answer.json()["message"]))
                if answer.status_code == 200:
                    return

    def wait(self) -> list[tuple[int, str]]:
        self.thread.join(max(0.0, self.deadline - time.monotonic()) + 1)
        return self.answers


@pytest.fixture
def started(tmp_path: pathlib.Path) -> Iterator[tuple[GatewayProcess, str, list[tuple[int, str]]]]:
    kong_yml = tmp_path / "kong.yml"
    kong_yml.write_text(KONG_YML.format(port=closed_port()))
    status_port = free_port()
    env = {**WORKERS, "KONG_DECLARATIVE_CONFIG": str(kong_yml), "KONG_STATUS_LISTEN": f"127.0.0.1:{status_port}"}
    gw = make_gateway(tmp_path, env)
    status = f"http://127.0.0.1:{status_port}"
    probe = ReadyProbe(f"{status}/status/ready")
    gw.start()
    try:
        yield gw, status, probe.wait()
    finally:
        assert gw.stop() == 0


def test_ready_only_once_every_worker_has_its_configuration(
    started: tuple[GatewayProcess, str, list[tuple[int, str]]],
) -> None:
    _, _, answers = started
    assert answers and answers[-1] == (200, "ready"), answers
    waiting = answers[:-1]
    # the Status API opens before the workers start: a worker process takes a while to fork and build its snapshot
    assert waiting, "no 503 seen before the workers were ready"
    allowed = {f"router builds not yet complete, router ready in {n} of 2 workers" for n in (0, 1)}
    assert all(status == 503 and message in allowed for status, message in waiting), waiting
    counts = [int(message.split(" in ")[1][0]) for _, message in waiting]
    assert counts == sorted(counts)  # never goes back


def test_counters_are_summed_over_both_workers(started: tuple[GatewayProcess, str, list[tuple[int, str]]]) -> None:
    gw, status, _ = started
    workers = httpx.get(gw.admin_url, timeout=10).json()["pids"]["workers"]
    assert len(workers) == 2
    sent = 0
    served: set[int] = set()
    deadline = time.monotonic() + 20
    while sent < 40 or served != set(workers):  # fresh connections until each worker has served some (bounded)
        assert time.monotonic() < deadline, f"both workers did not serve in 20 s: {served}"
        with httpx.Client(timeout=10) as client:  # a new connection each time: SO_REUSEPORT picks the worker
            assert client.get(f"{gw.proxy_url}/down").status_code == 502
        sent += 1
        served = {int(m.group(1)) for m in PID_LINE.finditer(gw.error_log.read_text())}

    for page in (scrape(f"{status}/metrics"), scrape(f"{gw.admin_url}/metrics")):
        assert page.value("kong_http_requests_total", service="down", route="r-down", code="502", source="kong") == sent
        assert page.value("kong_request_latency_ms_count", route="r-down") == sent
        assert page.value("kong_nginx_requests_total", subsystem="http") == sent
        assert page.value("kong_nginx_connections_total", state="accepted") == sent
        assert page.value("kong_upstream_connections_total", service="down", reused="true") is None
        memory = {s["pid"] for s, _ in page.samples("kong_memory_workers_lua_vms_bytes")}
        assert memory == {str(pid) for pid in workers}  # the workers, not the master
        assert page.value("kong_nginx_metric_errors_total") == 0.0
