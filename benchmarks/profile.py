"""Profile the gateway under one scenario's load: py-spy samples the real process while wrk/ab drives it.

    python -m benchmarks.profile S3 [--duration 10] [--native] [--out profile.txt]
    python -m benchmarks.profile S1 --cprofile [--duration 4] [--out s1.prof]

Writes py-spy's raw (collapsed-stack) output and prints the functions with the most samples, by self time and by
total time: the list to read before changing anything on the hot path. ``--native`` adds C frames (OpenSSL,
uvloop), to tell socket syscalls from TLS record work.

``--cprofile`` runs the gateway under ``python -m cProfile`` instead (written when it stops) and prints calls and
microseconds per request for each function: exact call counts, where py-spy's samples are too few to see a
0.5 us function. cProfile's own cost per call inflates the times (roughly twice the unprofiled CPU), so read
them as shares and counts, and measure a change with ``benchmarks.compare``.
"""

from __future__ import annotations

import argparse
import collections
import pstats
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from benchmarks.run import prepare_environment
from benchmarks.scenarios import SCENARIOS, Scenario, drive, probe, start_gateway, url_of
from gateway.compiled import ENV

__all__ = ["per_request", "summarize"]


def summarize(raw: str, top: int = 25) -> str:
    """Self and total sample counts per frame from py-spy's collapsed stacks (``a;b;c count`` lines)."""
    self_counts: collections.Counter[str] = collections.Counter()
    total_counts: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        samples += count
        frames = stack.split(";")
        self_counts[frames[-1]] += count
        for frame in set(frames):
            total_counts[frame] += count
    out = [f"{samples} samples", "", "self:"]
    out += [f"{c * 100 / samples:6.1f}%  {f}" for f, c in self_counts.most_common(top)]
    out += ["", "total:"]
    out += [f"{c * 100 / samples:6.1f}%  {f}" for f, c in total_counts.most_common(top)]
    return "\n".join(out)


def per_request(stats: pstats.Stats, requests: int, top: int = 40) -> str:
    """cProfile's functions by own time, as calls and microseconds per request (``requests`` served while profiled).

    Functions called fewer than once per ten requests (start-up, the admin probe) are left out.
    """
    rows = []
    for (path, line, name), (_, calls, own, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        if calls * 10 >= requests:
            where = name if path == "~" else f"{name} ({Path(path).name}:{line})"
            rows.append((own, cumulative, calls, where))
    rows.sort(reverse=True)
    total = sum(row[0] for row in rows)
    out = [f"{requests:,} requests; {total * 1e6 / requests:.1f} us own time per request in the functions below", ""]
    out.append("   calls/req  own us/req  cum us/req  function")
    for own, cumulative, calls, where in rows[:top]:
        own_us, cumulative_us = own * 1e6 / requests, cumulative * 1e6 / requests
        out.append(f"{calls / requests:12.2f} {own_us:11.2f} {cumulative_us:11.2f}  {where}")
    return "\n".join(out)


def _cprofile(scenario: Scenario, duration: float, out: Path) -> None:
    """The gateway under cProfile for ``duration`` seconds of the scenario's load (no warm-up: its requests count)."""
    with tempfile.TemporaryDirectory() as tmp, prepare_environment(Path(tmp)) as (env, procs):
        # cProfile sees no function of a compiled module: the request path runs from its sources (``gateway.compiled``)
        server = start_gateway(
            procs, scenario, env, python_args=("-m", "cProfile", "-o", str(out.resolve())), extra_env={ENV: "1"}
        )
        client = None
        if scenario.verify_client:
            pki = env.pki[scenario.downstream_tls or "ecdsa"]
            client = (pki.client_chain, pki.client_key)
        probe(url_of(scenario, server), client)
        result = drive(scenario, env, server, duration)
        procs.stop(server)  # SIGTERM: the gateway drains and returns, and cProfile writes its file
    print(f"{result.load.rps:,.0f} req/s under cProfile")
    print(per_request(pstats.Stats(str(out)), result.load.requests + 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--native", action="store_true")
    parser.add_argument("--cprofile", action="store_true", help="cProfile in the gateway: calls and us per request")
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path("profile.txt"))
    args = parser.parse_args()
    scenario = next((s for s in SCENARIOS if s.key == args.scenario), None)
    if scenario is None:
        sys.exit(f"unknown scenario {args.scenario}")
    if args.cprofile:
        _cprofile(scenario, args.duration, args.out)
        return
    pyspy = Path(sys.executable).with_name("py-spy")
    if not pyspy.exists():
        sys.exit(f"py-spy is not installed next to {sys.executable}: pip install -e '.[bench]' (or use --cprofile)")
    with tempfile.TemporaryDirectory() as tmp, prepare_environment(Path(tmp)) as (env, procs):
        server = start_gateway(procs, scenario, env)
        client = None
        if scenario.verify_client:
            pki = env.pki[scenario.downstream_tls or "ecdsa"]
            client = (pki.client_chain, pki.client_key)
        probe(url_of(scenario, server), client)
        drive(scenario, env, server, 1.0)
        cmd = [str(pyspy), "record", "-f", "raw", "-o", str(args.out), "--pid", str(server.pid)]
        cmd += ["--duration", str(round(args.duration)), "--rate", str(args.rate), "--nonblocking"]
        if args.native:
            cmd.append("--native")
        spy = threading.Thread(target=subprocess.run, args=(cmd,), kwargs={"capture_output": True})
        spy.start()
        result = drive(scenario, env, server, args.duration)
        spy.join(timeout=args.duration + 60)
        print(f"{result.load.rps:,.0f} req/s under the profiler, cpu/10k {result.cpu_per_10k:.3f} s")
    print(summarize(args.out.read_text()))


if __name__ == "__main__":
    main()
