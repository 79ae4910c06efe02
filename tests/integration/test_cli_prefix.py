"""One gateway per prefix: a second ``gateway start`` is refused with Kong's message and touches nothing of the
running one; a pid file left by a gateway that is gone is taken over, with a notice (``gateway.runtime.pidfile``)."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import httpx
import pytest

from tests.fixtures.gateway_process import GATEWAY, GatewayProcess, make_gateway, run_cli, running_gateway
from tests.fixtures.ports import free_port


def _start_once(gw: GatewayProcess, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``gateway start`` expected to end by itself (refused): its exit code and output."""
    return subprocess.run(
        [GATEWAY, "start", "-p", str(gw.prefix)],
        env=gw.env | (extra_env or {}),
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize("ports", ["same", "other"])
def test_a_second_start_on_a_running_prefix_is_refused_and_changes_nothing(tmp_path: pathlib.Path, ports: str) -> None:
    with running_gateway(tmp_path) as first:
        assert first.proc is not None
        pid_file = first.prefix / "pids" / "gateway.pid"
        before = (pid_file.read_text(), pid_file.stat().st_ino, first.error_log.read_text())
        other = {}
        if ports == "other":  # not refused for its ports: for the prefix
            other = {"KONG_PROXY_LISTEN": f"127.0.0.1:{free_port()}", "KONG_ADMIN_LISTEN": f"127.0.0.1:{free_port()}"}

        second = _start_once(first, other)

        assert second.returncode == 1
        assert second.stderr == f"Error: Kong is already running in {first.prefix}\n"
        assert second.stdout == ""
        assert (pid_file.read_text(), pid_file.stat().st_ino, first.error_log.read_text()) == before
        assert before[0].strip() == str(first.proc.pid)
        assert httpx.get(f"{first.admin_url}/status", timeout=5).status_code == 200
        stop = run_cli("stop", "-p", str(first.prefix), env=first.env)  # the pid file still leads to the first one
        assert (stop.returncode, stop.stdout) == (0, "Gateway stopped\n"), stop.stderr
        assert first.proc.wait(15) == 0
    assert not pid_file.exists()


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


@pytest.mark.parametrize("content", ["dead", "garbage", "not-a-gateway"])
def test_a_stale_pid_file_is_taken_over_with_a_notice(tmp_path: pathlib.Path, content: str) -> None:
    gw = make_gateway(tmp_path)
    pid_file = gw.prefix / "pids" / "gateway.pid"
    pid_file.parent.mkdir(parents=True)
    bystander = None
    if content == "dead":
        pid_file.write_text(f"{_dead_pid()}\n")
        held = f"process {pid_file.read_text().strip()} is not a running gateway"
    elif content == "garbage":
        pid_file.write_text("not a pid\n")
        held = "it held no pid"
    else:  # a live process that got the pid of a gateway that is gone: never signalled, never a reason to refuse
        bystander = subprocess.Popen(["sh", "-c", "echo up; exec sleep 60"], stdout=subprocess.PIPE, text=True)
        assert bystander.stdout is not None and bystander.stdout.readline() == "up\n"  # running its own program
        pid_file.write_text(f"{bystander.pid}\n")
        held = f"process {bystander.pid} is not a running gateway"
    try:
        if bystander is not None:
            stop = run_cli("stop", "-p", str(gw.prefix), env=gw.env)
            assert stop.returncode == 1
            assert stop.stderr == f"Error: gateway is not running in {gw.prefix}\n"
            assert bystander.poll() is None
        gw.start()
        try:
            assert gw.proc is not None
            notice = f"took over the stale pid file {pid_file} ({held})"
            assert f"Notice: {notice}\n" in gw.output
            assert f"[notice] {gw.proc.pid}#0: [runtime] {notice}" in gw.error_log.read_text()
            assert pid_file.read_text() == f"{gw.proc.pid}\n"
        finally:
            assert gw.stop() == 0
        assert not pid_file.exists()
        if bystander is not None:
            assert bystander.poll() is None
    finally:
        if bystander is not None:
            bystander.kill()
            bystander.wait()
