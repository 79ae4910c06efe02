"""The real ``gateway`` process: CLI commands, start-up errors, persistence, DB-less loading, signals."""

from __future__ import annotations

import pathlib
import signal
import subprocess
import sys

import httpx
import pytest

from tests.fixtures.gateway_process import GATEWAY, make_gateway, run_cli, running_gateway

KONG_YML = """\
_format_version: "3.0"
services:
- name: svc-a
  url: http://127.0.0.1:9/
  routes:
  - name: route-a
    paths: ["/a"]
"""


def test_version_and_python_dash_m() -> None:
    out = run_cli("version")
    assert out.returncode == 0
    assert "Kong 3.9.1 compatible" in out.stdout
    dash_m = subprocess.run([sys.executable, "-m", "gateway", "version"], capture_output=True, text=True, timeout=30)
    assert dash_m.stdout == out.stdout


def test_check_accepts_the_reference_conf_and_rejects_bad_keys(tmp_path: pathlib.Path) -> None:
    conf = pathlib.Path(__file__).parents[2] / "conf" / "gateway.conf"
    ok = run_cli("check", str(conf))
    assert ok.returncode == 0, ok.stderr
    assert f"configuration at {conf} is valid" in ok.stdout

    bad = tmp_path / "bad.conf"
    bad.write_text("log_level = info\nupstream_keepalive = 3\n")
    out = run_cli("check", str(bad))
    assert out.returncode == 1
    assert "unknown setting 'upstream_keepalive'" in out.stderr
    assert f"{bad}:2" in out.stderr


def test_start_fails_clearly_on_a_bad_value(tmp_path: pathlib.Path) -> None:
    gw = make_gateway(tmp_path, {"KONG_HTTP_PARSER": "fast"})
    out = subprocess.run(
        [GATEWAY, "start", "-p", str(gw.prefix)], env=gw.env, capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 1
    assert "http_parser has an invalid value: 'fast' (accepted: httptools, h11)" in out.stderr


def test_start_fails_clearly_when_the_port_is_taken(tmp_path: pathlib.Path) -> None:
    with running_gateway(tmp_path / "one") as first:
        gw = make_gateway(tmp_path / "two", {"KONG_PROXY_LISTEN": f"127.0.0.1:{first.proxy_port}"})
        out = subprocess.run(
            [GATEWAY, "start", "-p", str(gw.prefix)], env=gw.env, capture_output=True, text=True, timeout=30
        )
        assert out.returncode == 1
        assert f"could not listen on 127.0.0.1:{first.proxy_port}" in out.stderr


def test_status_answers_once_started_and_sigterm_exits_zero(tmp_path: pathlib.Path) -> None:
    gw = make_gateway(tmp_path).start()
    try:
        status = httpx.get(f"{gw.admin_url}/status", timeout=5)
        assert status.status_code == 200
        assert status.json()["database"]["reachable"] is True
        assert (gw.prefix / "pids" / "gateway.pid").read_text().strip() == str(gw.proc.pid)  # type: ignore[union-attr]
    finally:
        code = gw.stop()
    assert code == 0
    assert "gracefully shutting down" in gw.error_log.read_text()
    assert not (gw.prefix / "pids" / "gateway.pid").exists()


def test_sqlite_data_survives_a_restart(tmp_path: pathlib.Path) -> None:
    gw = make_gateway(tmp_path)
    gw.start()
    try:
        created = httpx.post(f"{gw.admin_url}/services", json={"name": "keep", "url": "http://127.0.0.1:9/x"})
        assert created.status_code == 201, created.text
        service_id = created.json()["id"]
    finally:
        assert gw.stop() == 0
    assert (gw.prefix / "gateway.db").is_file()
    gw.start()
    try:
        again = httpx.get(f"{gw.admin_url}/services/keep")
        assert again.status_code == 200
        assert again.json()["id"] == service_id
        assert again.json()["path"] == "/x"
    finally:
        assert gw.stop() == 0


def test_db_less_loads_kong_yml_and_refuses_writes(tmp_path: pathlib.Path) -> None:
    kong_yml = tmp_path / "kong.yml"
    kong_yml.write_text(KONG_YML)
    env = {"KONG_DATABASE": "off", "KONG_DECLARATIVE_CONFIG": str(kong_yml)}
    with running_gateway(tmp_path, env) as gw:
        services = httpx.get(f"{gw.admin_url}/services").json()["data"]
        assert [s["name"] for s in services] == ["svc-a"]
        routes = httpx.get(f"{gw.admin_url}/routes").json()["data"]
        assert routes[0]["paths"] == ["/a"] and routes[0]["service"]["id"] == services[0]["id"]
        refused = httpx.post(f"{gw.admin_url}/services", json={"name": "new", "url": "http://x.test"})
        assert refused.status_code == 405


def test_sighup_reloads_the_declarative_file(tmp_path: pathlib.Path) -> None:
    kong_yml = tmp_path / "kong.yml"
    kong_yml.write_text(KONG_YML)
    env = {"KONG_DATABASE": "off", "KONG_DECLARATIVE_CONFIG": str(kong_yml)}
    with running_gateway(tmp_path, env) as gw:
        kong_yml.write_text(KONG_YML.replace("svc-a", "svc-b"))
        gw.signal(signal.SIGHUP)
        _wait_for_log(gw.error_log, "reconfiguration done")
        names = [s["name"] for s in httpx.get(f"{gw.admin_url}/services").json()["data"]]
        assert names == ["svc-b"]

        # A broken file keeps the running configuration and says why.
        kong_yml.write_text("_format_version: '3.0'\nservices:\n- name: broken\n")
        gw.signal(signal.SIGHUP)
        _wait_for_log(gw.error_log, "reconfiguration done", occurrence=2)
        assert "keeping the running configuration" in gw.error_log.read_text()
        names = [s["name"] for s in httpx.get(f"{gw.admin_url}/services").json()["data"]]
        assert names == ["svc-b"]


def test_db_less_start_with_an_invalid_file_exits_with_the_reason(tmp_path: pathlib.Path) -> None:
    kong_yml = tmp_path / "kong.yml"
    kong_yml.write_text("_format_version: '3.0'\nservices:\n- name: broken\n  port: 99999\n")
    gw = make_gateway(tmp_path, {"KONG_DATABASE": "off", "KONG_DECLARATIVE_CONFIG": str(kong_yml)})
    out = subprocess.run(
        [GATEWAY, "start", "-p", str(gw.prefix)], env=gw.env, capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 1
    assert "failed loading declarative config file" in out.stderr


def test_config_parse_and_db_import(tmp_path: pathlib.Path) -> None:
    good = tmp_path / "kong.yml"
    good.write_text(KONG_YML)
    parsed = run_cli("config", "parse", str(good))
    assert parsed.returncode == 0, parsed.stderr
    assert "parse successful" in parsed.stdout

    bad = tmp_path / "bad.yml"
    bad.write_text("_format_version: '3.0'\nservices:\n- name: s\n  host: h.test\n  routes:\n  - paths: [nope]\n")
    failed = run_cli("config", "parse", str(bad))
    assert failed.returncode == 1
    assert "should start with: /" in failed.stderr

    gw = make_gateway(tmp_path)
    imported = run_cli("config", "db_import", str(good), "-p", str(gw.prefix), env=gw.env)
    assert imported.returncode == 0, imported.stderr
    gw.start()
    try:
        body = httpx.get(f"{gw.admin_url}/services/svc-a")
        assert body.status_code == 200, body.text
    finally:
        gw.stop()


def _wait_for_log(path: pathlib.Path, needle: str, occurrence: int = 1, timeout: float = 10.0) -> None:
    """Follow a log file until ``needle`` has appeared ``occurrence`` times (bounded)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().count(needle) >= occurrence:
            return
        time.sleep(0.05)
    pytest.fail(f"{needle!r} did not appear {occurrence} time(s) in {path}:\n{path.read_text()[-2000:]}")


class HeldUpstream:
    """An HTTP upstream that answers only when released: a request is provably in flight meanwhile."""

    def __init__(self) -> None:
        import socket
        import threading

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.received = threading.Event()
        self.release = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(4096)
            self.received.set()
            self.release.wait(20)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nConnection: close\r\n\r\ndrained")


def test_sigterm_drains_in_flight_requests_then_exits_zero(tmp_path: pathlib.Path) -> None:
    import socket
    import threading
    import time

    upstream = HeldUpstream()
    gw = make_gateway(tmp_path).start()
    body = {"name": "held", "url": f"http://127.0.0.1:{upstream.port}/"}
    assert httpx.post(f"{gw.admin_url}/services", json=body).status_code == 201
    assert httpx.post(f"{gw.admin_url}/services/held/routes", json={"paths": ["/held"]}).status_code == 201

    result: dict[str, httpx.Response] = {}
    client = threading.Thread(target=lambda: result.update(r=httpx.get(gw.proxy_url + "/held", timeout=20)))
    client.start()
    assert upstream.received.wait(10), "the request never reached the upstream"
    gw.signal(signal.SIGTERM)

    # The listener closes while the request is still open: new connections are refused.
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", gw.proxy_port), timeout=1).close()
        except (ConnectionRefusedError, ConnectionResetError):  # reset: accepted by the kernel as the listener closed
            break
        assert time.monotonic() < deadline, "the proxy listener was not closed after SIGTERM"
        time.sleep(0.02)
    assert gw.proc is not None and gw.proc.poll() is None, "the gateway exited with a request in flight"

    upstream.release.set()
    client.join(20)
    assert result["r"].status_code == 200 and result["r"].text == "drained"
    assert gw.proc.wait(15) == 0
