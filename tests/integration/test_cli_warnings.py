"""Start-up warnings that change behaviour reach the terminal (stderr) as well as the error log
(``gateway.runtime.notices``)."""

from __future__ import annotations

import contextlib
import pathlib
import signal
import subprocess
import time

import httpx

from tests.fixtures.gateway_process import GATEWAY, GatewayProcess, make_gateway, run_cli

WARNED = {
    "KONG_PROXY_LISTENER": "127.0.0.1:1",  # a typo of KONG_PROXY_LISTEN
    "KONG_PG_SEMAPHORE_TIMEOUT": "60000",  # a Kong setting this gateway has not: ignored, as by Kong
    "KONG_CLIENT_SSL_CERT": "/nowhere/client.crt",  # with client_ssl off: never read, never sent
}
WARNINGS = [
    "Warning: ignoring unknown setting from the environment: KONG_PG_SEMAPHORE_TIMEOUT (no such setting)",
    "Warning: ignoring unknown setting from the environment: KONG_PROXY_LISTENER (did you mean KONG_PROXY_LISTEN?)",
    "Warning: client_ssl_cert set but client_ssl = off: no client certificate is presented to upstreams; set "
    "client_ssl = on (KONG_CLIENT_SSL=on) to present it, or remove the setting",
]


def _run_until_ready(gw: GatewayProcess, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Start, poll ``/status`` until it answers (bounded), stop with SIGTERM: stdout and stderr apart."""
    proc = subprocess.Popen(
        [GATEWAY, "start", "-p", str(gw.prefix)], env=gw.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=1) as client:
            while True:
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "the gateway did not answer /status"
                try:
                    if client.get(f"{gw.admin_url}/status").status_code == 200:
                        break
                except httpx.TransportError:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(0.05)  # the interval between two polls; ends early if the process exits
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def test_warnings_are_printed_on_stderr_at_start_and_logged(tmp_path: pathlib.Path) -> None:
    gw = make_gateway(tmp_path, WARNED, ssl=True)
    # honoured on the proxy listener (no warning), accepted and not honoured on the Admin listener (a warning)
    gw.env["KONG_PROXY_LISTEN"] = gw.env["KONG_PROXY_LISTEN"].replace(" ssl", " http2 ssl")
    gw.env["KONG_ADMIN_LISTEN"] += " http2"
    out = _run_until_ready(gw)
    assert out.returncode == 0, out.stderr
    http2 = (
        f"Warning: admin_listen: the http2 flag on 127.0.0.1:{gw.admin_port} is accepted (Kong's default listeners "
        "carry it) but the Admin API serves HTTP/1.1 only"
    )
    assert out.stderr.splitlines() == [*WARNINGS, http2]
    assert "Gateway started" in out.stdout
    log = gw.error_log.read_text().splitlines()
    for warning in [*WARNINGS, http2]:
        logged = [line for line in log if line.endswith(f"[config] {warning.removeprefix('Warning: ')}")]
        assert len(logged) == 1 and "[warn]" in logged[0], warning

    check = run_cli("check", str(pathlib.Path(__file__).parents[2] / "conf" / "gateway.conf"), env=gw.env)
    assert check.returncode == 0
    # the same warnings, the client certificate one said by the doctor's file checks instead
    assert [line for line in check.stderr.splitlines() if "KONG_" in line][:2] == WARNINGS[:2]
    assert http2 in check.stderr.splitlines()


def test_with_the_error_log_on_stderr_a_warning_is_printed_once(tmp_path: pathlib.Path) -> None:
    gw = make_gateway(tmp_path, {"KONG_PG_SEMAPHORE_TIMEOUT": "60000", "KONG_PROXY_ERROR_LOG": "/dev/stderr"})
    out = _run_until_ready(gw)
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stderr.splitlines() if "KONG_PG_SEMAPHORE_TIMEOUT" in line]
    assert len(lines) == 1 and "[warn]" in lines[0]  # the log line itself, no "Warning:" copy
    assert (
        "[config] ignoring unknown setting from the environment: KONG_PG_SEMAPHORE_TIMEOUT (no such setting)"
        in lines[0]
    )


def test_a_clean_configuration_prints_no_warning(tmp_path: pathlib.Path) -> None:
    gw = make_gateway(tmp_path)
    gw.start()
    try:
        assert "Warning" not in gw.drain_output()
    finally:
        assert gw.stop() == 0
