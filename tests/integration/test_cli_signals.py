"""A clean shutdown logs no ``alert``: SIGTERM or SIGINT to the whole process group (``docker stop`` through a
shell, Ctrl-C, ``kill -- -PGID``) or to the master alone, with worker processes, where the zygote used to die first
and be reported as a fault (``worker zygote process exited on signal 15; starting a new one``)."""

from __future__ import annotations

import os
import pathlib
import re
import signal
import subprocess
import time

import httpx
import pytest

from tests.fixtures.gateway_process import GATEWAY, make_gateway
from tests.fixtures.ports import wait_for_port

#: the whole stop must end well within the drain bound: before the fix, a dead zygote cost 5 s per worker wait
STOP_BOUND = 8.0


@pytest.mark.parametrize(
    ("sig", "group"), [(signal.SIGTERM, True), (signal.SIGINT, True), (signal.SIGTERM, False), (signal.SIGINT, False)]
)
def test_a_clean_shutdown_logs_no_alert(tmp_path: pathlib.Path, sig: signal.Signals, group: bool) -> None:
    gw = make_gateway(tmp_path, {"KONG_WORKER_PROCESSES": "2"})
    proc = subprocess.Popen(
        [GATEWAY, "start", "-p", str(gw.prefix)],
        env=gw.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group, as a container's or a terminal job's
    )
    try:
        wait_for_port(gw.admin_port, timeout=60, alive=lambda: proc.poll() is None)
        assert httpx.get(f"{gw.proxy_url}/", timeout=5).status_code == 404  # the workers serve
        pids = httpx.get(f"{gw.admin_url}/", timeout=5).json()["pids"]["workers"]
        assert len(pids) == 2
        started = time.monotonic()
        if group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
        assert proc.wait(STOP_BOUND + 5) == 0
        took = time.monotonic() - started
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    log = gw.error_log.read_text()
    assert not re.search(r"\[(alert|crit|emerg)\]", log), log
    assert "gracefully shutting down" in log
    for pid in pids:
        assert f"worker process {pid} exited with code 0" in log
    assert log.rstrip().endswith("exit")
    assert took < STOP_BOUND, f"the stop took {took:.1f}s"
