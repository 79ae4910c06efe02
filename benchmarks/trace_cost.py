"""What a traced request costs: the gateway's CPU per request with and without ``Kong-Debug: 1``.

    python -m benchmarks.trace_cost [--batches 6] [--requests 2000]

The S3 setup (HTTPS -> verified mTLS HTTPS upstream, keepalive both sides), with ``allow_debug_header = on``, so
a traced request gets all four TLS records plus Kong's route and service headers. One keepalive client sends
alternating batches of plain and ``Kong-Debug: 1`` requests; the gateway's own CPU time (utime + stime, read from
``/proc``) per batch divided by its requests is the figure, so the client's cost does not count. Medians are
printed; the difference is the price of the trace (with the setting on; off, a request pays one boolean test).
"""

from __future__ import annotations

import argparse
import http.client
import ssl
import statistics
import tempfile
from pathlib import Path

from benchmarks.processes import Processes, probe
from benchmarks.run import prepare_environment
from benchmarks.scenarios import SCENARIOS, start_gateway, url_of


def _batch(conn: http.client.HTTPSConnection, count: int, traced: bool) -> None:
    headers = {"Kong-Debug": "1"} if traced else {}
    for _ in range(count):
        conn.request("GET", "/", headers=headers)
        response = conn.getresponse()
        response.read()
        if traced != ("X-Gateway-TLS-Upstream-Trust" in response.headers):
            raise RuntimeError(f"unexpected trace headers (traced={traced}): {dict(response.headers)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    scenario = next(s for s in SCENARIOS if s.key == "S3")
    per_request: dict[bool, list[float]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as tmp, prepare_environment(Path(tmp)) as (env, _), Processes() as procs:
        server = start_gateway(procs, scenario, env, extra_env={"KONG_ALLOW_DEBUG_HEADER": "on"})
        probe(url_of(scenario, server))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=ctx, timeout=10)
        _batch(conn, 200, True)  # warm-up: connections, pools, caches
        for _ in range(args.batches):
            for traced in (False, True):
                before = server.stats().cpu_seconds
                _batch(conn, args.requests, traced)
                per_request[traced].append((server.stats().cpu_seconds - before) / args.requests * 1e6)
        conn.close()
    plain, traced_us = statistics.median(per_request[False]), statistics.median(per_request[True])
    print(f"untraced  median {plain:7.1f} us CPU/request  {[round(v, 1) for v in per_request[False]]}")
    print(f"traced    median {traced_us:7.1f} us CPU/request  {[round(v, 1) for v in per_request[True]]}")
    print(f"cost of the trace: {traced_us - plain:+.1f} us per request ({(traced_us / plain - 1) * 100:+.0f}%)")


if __name__ == "__main__":
    main()
