"""``status_listen`` against the real ``gateway`` process: Kong's Status API, its readiness rule and its errors."""

from __future__ import annotations

import pathlib
import socket
import subprocess

import httpx

from tests.fixtures.gateway_process import GATEWAY, make_gateway, running_gateway
from tests.fixtures.metrics import scrape
from tests.fixtures.ports import free_port

KONG_YML = """
_format_version: "3.0"
services:
- name: s
  url: http://127.0.0.1:9
  routes:
  - paths: ["/s"]
"""


def test_dbless_is_not_ready_before_its_first_configuration_and_ready_after(tmp_path: pathlib.Path) -> None:
    port = free_port()
    status = f"http://127.0.0.1:{port}"
    with running_gateway(tmp_path, {"KONG_DATABASE": "off", "KONG_STATUS_LISTEN": f"127.0.0.1:{port}"}) as gw:
        answer = httpx.get(f"{status}/status/ready", timeout=10)
        assert (answer.status_code, answer.json()) == (
            503,
            {"message": "no configuration available (empty configuration present)"},
        )
        assert httpx.get(f"{status}/status", timeout=10).json()["configuration_hash"] == "0" * 32
        loaded = httpx.post(f"{gw.admin_url}/config", json={"config": KONG_YML}, timeout=10)
        assert loaded.status_code == 201, loaded.text
        answer = httpx.get(f"{status}/status/ready", timeout=10)
        assert (answer.status_code, answer.json()) == (200, {"message": "ready"})
        assert httpx.get(f"{status}/status", timeout=10).json()["configuration_hash"] != "0" * 32
        # Kong 3.9's drain: the load balancer's probe sees 503 while the node keeps proxying
        drained = httpx.post(f"{status}/status/ready", data={"status": "draining"}, timeout=10)
        assert drained.status_code == 204
        answer = httpx.get(f"{status}/status/ready", timeout=10)
        assert (answer.status_code, answer.json()) == (503, {"message": "draining"})
        assert httpx.get(f"{gw.proxy_url}/s", timeout=10).status_code == 502  # still routing (nothing on port 9)
        assert "not ready for proxying: draining" in gw.error_log.read_text()


def test_the_status_api_has_its_routes_only_and_metrics_follow_the_plugins_setting(tmp_path: pathlib.Path) -> None:
    port = free_port()
    status = f"http://127.0.0.1:{port}"
    with running_gateway(tmp_path / "bundled", {"KONG_STATUS_LISTEN": f"127.0.0.1:{port} reuseport backlog=16384"}):
        body = httpx.get(f"{status}/status", timeout=10).json()
        assert body["database"] == {"reachable": True} and set(body["server"]) >= {"total_requests"}
        assert httpx.get(f"{status}/status/ready", timeout=10).json() == {"message": "ready"}
        assert scrape(f"{status}/metrics").value("kong_datastore_reachable") == 1.0
        for path in ("/services", "/", "/plugins"):
            answer = httpx.get(f"{status}{path}", timeout=10)
            assert (answer.status_code, answer.json()) == (404, {"message": "Not found"}), path
    port = free_port()
    env = {"KONG_STATUS_LISTEN": f"127.0.0.1:{port}", "KONG_PLUGINS": "mtls-auth"}
    with running_gateway(tmp_path / "narrow", env) as gw:
        for url in (f"http://127.0.0.1:{port}/metrics", f"{gw.admin_url}/metrics"):
            answer = httpx.get(url, timeout=10)
            assert (answer.status_code, answer.json()) == (404, {"message": "Not found"}), url


def test_a_status_port_in_use_stops_the_start_naming_the_setting(tmp_path: pathlib.Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # Kong's default flags: reuseport would let a plain SO_REUSEPORT bind share the port; it must fail instead
        gw = make_gateway(tmp_path, {"KONG_STATUS_LISTEN": f"127.0.0.1:{port} reuseport"})
        out = subprocess.run(
            [GATEWAY, "start", "-p", str(gw.prefix)], env=gw.env, capture_output=True, text=True, timeout=30
        )
    assert out.returncode == 1, out.stdout + out.stderr
    assert (
        f"could not listen on 127.0.0.1:{port} (status_listen): address already in use, something else listens "
        "there; change status_listen in the configuration file or KONG_STATUS_LISTEN in the environment" in out.stderr
    )
    assert "Gateway started" not in out.stdout
