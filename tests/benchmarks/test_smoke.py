"""Benchmark guard: S3 (HTTPS -> verified mTLS upstream, keepalive both sides) under load, gateway next to nginx.

It fails when the gateway answers anything but 2xx or wrk sees socket errors under load (``scenarios.drive`` raises),
or when the gateway's req/s falls below ``FLOOR`` times nginx's, both measured in this test on this machine.

Why a ratio and why this floor: absolute req/s on a shared 2-core machine swing by 2x with other work (the issue's
runs saw nginx between 9k and 48k req/s for S3), but both proxies suffer alike when they run back to back, so the
ratio is the stable figure. This test's own measure (best of two 2-second runs each) gave 0.63-0.72 on a quiet
machine and 0.70-0.77 with a busy loop taking one of the two cores (2026-12-06, after TUNING #25; it was 0.28-0.37
before the raw TLS data path). The floor, 0.4, leaves a third of the low end for noise, while a regression that
costs the hot path a third of its speed (a per-request context, a lost write batching, a timer per request, a
parser fallback) fails it; running the request path uncompiled (0.50 here) does not. The run order alternates so that
neither side always gets the warmer machine.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from benchmarks.processes import Processes, probe
from benchmarks.run import prepare_environment
from benchmarks.scenarios import SCENARIOS, drive, start_gateway, start_nginx_proxy, url_of

pytestmark = pytest.mark.timeout(120)

FLOOR = 0.4
DURATION = 2.0


def test_s3_gateway_keeps_up_with_nginx_without_errors() -> None:
    if shutil.which("wrk") is None:
        pytest.fail("wrk is not installed: run `make system-deps` (CI installs it)")
    s3 = next(s for s in SCENARIOS if s.key == "S3")
    rps: dict[str, list[float]] = {"gateway": [], "nginx": []}
    with (
        tempfile.TemporaryDirectory(prefix="bench-smoke-") as tmp,
        prepare_environment(Path(tmp)) as (env, _),
        Processes() as procs,
    ):
        servers = {"gateway": start_gateway(procs, s3, env), "nginx": start_nginx_proxy(procs, s3, env)}
        for server in servers.values():
            probe(url_of(s3, server))
            drive(s3, env, server, 1.0)  # warm-up (wrk's shortest run)
        for name in ("gateway", "nginx", "nginx", "gateway"):
            rps[name].append(drive(s3, env, servers[name], DURATION).load.rps)
    ratio = max(rps["gateway"]) / max(rps["nginx"])
    assert ratio >= FLOOR, f"gateway/nginx req/s {ratio:.2f} < floor {FLOOR} (runs: {rps})"
