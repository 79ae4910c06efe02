"""``gateway demo [--step N] [--keep]``: run the steps, say what each one showed, and always clean up.

Output, for a reader first and for the test suite second: each step's header and explanation, the curl lines of
its calls with their results, then one machine-checkable line, ``step N: ok (expected X, got Y)`` or
``step N: FAILED (expected X, got Y)``; the last line counts them. Exit status 0 when every step gave its expected
outcome, 1 otherwise (or when the demo could not start), 130 when interrupted.

Cleanup is a ``finally``: the gateway gets SIGTERM (SIGKILL after a grace period), the upstreams' loop stops and the
temp dir is removed, whether the steps ended, failed, raised, or were interrupted by Ctrl-C or SIGTERM (turned into
``KeyboardInterrupt`` while the demo runs). ``--keep`` leaves the gateway running after the last step, so the curl
lines can be tried, until Ctrl-C; the temp dir (certificates, request bodies, the gateway's logs) is then kept.
"""

from __future__ import annotations

import http.client
import shutil
import signal
import ssl
import sys
import tempfile
import textwrap
import threading
from pathlib import Path
from types import FrameType
from typing import TextIO

from gateway.demo.client import Admin, AdminError
from gateway.demo.gatewayproc import DemoGateway, GatewayError
from gateway.demo.pki import DemoPki
from gateway.demo.steps import STEPS, Demo, Outcome, Step
from gateway.demo.upstreams import DemoUpstreams

__all__ = ["run_demo"]

EXIT_INTERRUPTED = 130
LAYERS = {
    1: "layer 1, the certificate served",
    2: "layer 2, client certificates downstream",
    3: "layer 3, the client certificate upstream",
    4: "layer 4, trusting the upstream",
}
#: what a step may fail with, reported as its outcome (anything else is a bug and propagates)
STEP_ERRORS = (AdminError, GatewayError, OSError, ssl.SSLError, http.client.HTTPException, KeyError)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _run_step(demo: Demo, step: Step, say: TextIO | None) -> Outcome:
    if say is not None:
        print(f"\n== step {step.number} of {len(STEPS)} · {LAYERS[step.layer]}: {step.title} ==", file=say)
        print(textwrap.indent(textwrap.fill(step.teaches, 110), "  "), file=say, flush=True)
    demo.mark_log()
    try:
        return step.run(demo)
    except STEP_ERRORS as exc:
        return Outcome("the step to run", f"an error: {exc}")


def _intro(out: TextIO, directory: Path, gateway: DemoGateway, upstreams: DemoUpstreams) -> None:
    print("gateway demo: Kong's four TLS layers, one step at a time, on this machine only.", file=out)
    print(f"  temp dir     {directory} (certificates in pki/, request bodies in requests/)", file=out)
    print(
        f"  gateway      proxy 127.0.0.1:{gateway.proxy_port} and {gateway.proxy_ssl_port} (ssl), admin "
        f"127.0.0.1:{gateway.admin_port}; settings {gateway.conf}",
        file=out,
    )
    print(
        f"  upstreams    mtls.demo.internal 127.0.0.1:{upstreams.ports['mtls']} (requires a client certificate), "
        f"verify.demo.internal 127.0.0.1:{upstreams.ports['verify']}, deep.demo.internal "
        f"127.0.0.1:{upstreams.ports['deep']} (two intermediates)",
        file=out,
    )
    print("  every request sends Kong-Debug: 1 (allow_debug_header = on); X-Gateway-TLS-* answers are shown", file=out)


def _steps(demo: Demo, first: int, out: TextIO) -> int:
    """Run every step (those before ``first`` quietly); the number that did not give their expected outcome."""
    failed = 0
    for step in STEPS:
        loud = step.number >= first
        demo.say = demo.admin.say = (lambda line: print(line, file=out, flush=True)) if loud else (lambda _l: None)
        outcome = _run_step(demo, step, out if loud else None)
        verdict = "ok" if outcome.ok else "FAILED"
        failed += not outcome.ok
        print(f"step {step.number}: {verdict} (expected {outcome.expected}, got {outcome.got})", file=out, flush=True)
    return failed


def _wait_for_ctrl_c(out: TextIO) -> None:
    print("\n--keep: the gateway and the upstreams keep running; try the curl lines above. Ctrl-C to stop.", file=out)
    threading.Event().wait()  # until KeyboardInterrupt


def run_demo(first_step: int = 1, keep: bool = False, out: TextIO = sys.stdout) -> int:
    """The whole demo; the exit status (see the module docstring)."""
    directory = Path(tempfile.mkdtemp(prefix="gateway-demo-"))
    previous = signal.signal(signal.SIGTERM, _interrupt)
    gateway = DemoGateway(directory)
    upstreams: DemoUpstreams | None = None
    status = 1
    try:
        pki = DemoPki.make(directory / "pki")
        upstreams = DemoUpstreams(pki)
        upstreams.start()
        gateway.start()
        _intro(out, directory, gateway, upstreams)
        demo = Demo(pki, gateway, upstreams, Admin(gateway, directory, print), print)
        failed = _steps(demo, first_step, out)
        print(f"\ndemo: {len(STEPS) - failed} of {len(STEPS)} steps gave the expected outcome", file=out)
        status = 0 if failed == 0 else 1
        if keep:
            _wait_for_ctrl_c(out)
    except KeyboardInterrupt:
        print("\ninterrupted: stopping the gateway and the upstreams", file=out)
        status = status if keep and status == 0 else EXIT_INTERRUPTED
    except (GatewayError, RuntimeError, OSError) as exc:
        print(f"demo: cannot go on: {exc}", file=out)
        status = 1
    finally:
        _clean_up(directory, gateway, upstreams, keep, out)
        signal.signal(signal.SIGTERM, previous)
    return status


def _clean_up(directory: Path, gateway: DemoGateway, upstreams: DemoUpstreams | None, keep: bool, out: TextIO) -> None:
    """Stop what runs and remove the temp dir; a second Ctrl-C or SIGTERM meanwhile must not stop it half-way."""
    ignored = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        gateway.stop()
        if upstreams is not None:
            upstreams.stop()
        if keep:
            print(f"kept {directory}", file=out)
        else:
            shutil.rmtree(directory, ignore_errors=True)
    finally:
        for sig, handler in ignored.items():
            signal.signal(sig, handler)
