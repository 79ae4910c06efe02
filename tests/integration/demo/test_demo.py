"""``gateway demo`` run as a learner runs it: the console script, to the end, then cut short.

The demo prints one ``step N: ok (expected X, got Y)`` line per step and exits non-zero when a step's outcome
differs; these tests hold it to every step's expected outcome (written here, not read from the demo), to the
cleanup (its temp dir gone, its gateway's ports closed) after a full run, after ``--step``, and after SIGTERM or
SIGINT mid-way.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.fixtures.gateway_process import GATEWAY

pytestmark = pytest.mark.timeout(90)

RUN_TIMEOUT = 60.0

#: every step's expected outcome, as the demo must print it
EXPECTED = {
    1: "www.demo.test=CN=demo.test; other.example=CN=localhost",
    2: "401",
    3: "401",
    4: "200",
    5: "400 no client certificate",
    6: "200 CN=service-level",
    7: "200 CN=upstream-level",
    8: "400 no client certificate, then 200 CN=global-level",
    9: "200, then 502 (20:unable to get local issuer certificate)",
    10: "200",
    11: "502 (22:certificate chain too long), then 200",
}
STEP_LINE = re.compile(r"^step (\d+): (ok|FAILED) \(expected (.*), got (.*)\)$")


def demo_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("KONG_")}


def run_demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([GATEWAY, "demo", *args], capture_output=True, text=True, timeout=RUN_TIMEOUT, env=demo_env())


def step_lines(stdout: str) -> dict[int, tuple[str, str, str]]:
    found = {}
    for line in stdout.splitlines():
        match = STEP_LINE.match(line)
        if match:
            found[int(match[1])] = (match[2], match[3], match[4])
    return found


def temp_dir(stdout: str) -> Path:
    [line] = [line for line in stdout.splitlines() if line.startswith("  temp dir ")]
    return Path(line.split()[2])


def admin_port(stdout: str) -> int:
    match = re.search(r"admin 127\.0\.0\.1:(\d+);", stdout)
    assert match, stdout
    return int(match[1])


def port_closed(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_the_demo_runs_to_the_end_with_every_expected_outcome() -> None:
    started = time.monotonic()
    out = run_demo()
    elapsed = time.monotonic() - started
    assert out.returncode == 0, out.stdout + out.stderr
    assert elapsed < RUN_TIMEOUT
    assert out.stderr == ""
    steps = step_lines(out.stdout)
    assert sorted(steps) == sorted(EXPECTED)
    for number, expected in EXPECTED.items():
        assert steps[number] == ("ok", expected, expected), number
    assert out.stdout.rstrip().endswith("demo: 11 of 11 steps gave the expected outcome")
    # what a reader sees on the way: curl lines, the mtls-auth reason, the gateway's own 502 line and its header
    assert "  $ curl -sS -X POST http://127.0.0.1:" in out.stdout
    assert "[mtls-auth] client certificate verify error: (21:unable to verify the first certificate)" in out.stdout
    assert (
        "error.log: " in out.stdout
        and "upstream SSL certificate verify error: (22:certificate chain too long) while SSL handshaking to upstream"
        in out.stdout
    )
    assert "X-Gateway-TLS-Error: upstream SSL certificate verify error: (20:unable to get local issuer" in out.stdout
    assert "client_ssl_cert is read when the gateway starts" in out.stdout
    # the four layers' decision records (allow_debug_header + Kong-Debug), as a learner sees them
    assert "X-Gateway-TLS-Downstream: sni=mtls.demo.test; rule=wildcard-prefix; sni_entity=*.demo.test" in out.stdout
    assert "presented=yes; subject=CN=learner; chain=1; verify=21:unable to verify the first certificate" in out.stdout
    assert "X-Gateway-TLS-Upstream-Cert: from=service; " in out.stdout
    assert "X-Gateway-TLS-Upstream-Cert: from=upstream; " in out.stdout
    assert "verify=on; verify_from=service; " in out.stdout
    assert "result=20:unable to get local issuer certificate" in out.stdout
    # nothing left behind
    assert not temp_dir(out.stdout).exists()
    assert port_closed(admin_port(out.stdout))


def test_step_jumps_and_replays_the_earlier_steps_quietly() -> None:
    out = run_demo("--step", "9")
    assert out.returncode == 0, out.stdout + out.stderr
    headers = [line for line in out.stdout.splitlines() if line.startswith("== step ")]
    assert [h.split(" of ")[0] for h in headers] == ["== step 9", "== step 10", "== step 11"]
    assert sorted(step_lines(out.stdout)) == sorted(EXPECTED)
    assert "client_ssl_cert is read when the gateway starts" not in out.stdout  # step 8 ran, silently
    assert not temp_dir(out.stdout).exists()


def test_a_step_out_of_range_is_a_usage_error() -> None:
    out = run_demo("--step", "12")
    assert out.returncode == 2
    assert "--step is 1 to 11" in out.stderr


def _start_and_wait_for(args: list[str], needle: str) -> tuple[subprocess.Popen[str], list[str]]:
    proc = subprocess.Popen(
        [GATEWAY, "demo", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=demo_env()
    )
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + RUN_TIMEOUT
    for line in proc.stdout:  # the demo flushes every line; readline returns when one is complete
        lines.append(line)
        if needle in line or time.monotonic() > deadline:
            break
    assert any(needle in line for line in lines), "".join(lines)
    return proc, lines


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_interrupted_mid_way_it_still_cleans_up(sig: signal.Signals) -> None:
    proc, lines = _start_and_wait_for([], "step 3: ")
    proc.send_signal(sig)
    rest, err = proc.communicate(timeout=RUN_TIMEOUT)
    stdout = "".join(lines) + rest
    assert proc.returncode == 130, stdout + err
    assert "interrupted: stopping the gateway and the upstreams" in stdout
    assert "Traceback" not in err
    assert not temp_dir(stdout).exists()
    assert port_closed(admin_port(stdout))


def test_keep_leaves_the_gateway_running_until_ctrl_c_then_keeps_the_files() -> None:
    proc, lines = _start_and_wait_for(["--keep"], "--keep: the gateway and the upstreams keep running")
    stdout = "".join(lines)
    port = admin_port(stdout)
    assert not port_closed(port)  # still serving: the curl lines can be tried
    proc.send_signal(signal.SIGINT)
    rest, err = proc.communicate(timeout=RUN_TIMEOUT)
    stdout += rest
    directory = temp_dir(stdout)
    try:
        assert proc.returncode == 0, stdout + err
        assert f"kept {directory}" in stdout
        assert (directory / "pki" / "demo-root-ca.crt").exists()
        assert port_closed(port)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
