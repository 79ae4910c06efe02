"""The benchmark suite: every scenario, the gateway next to nginx, one worker each, medians of A/B rounds.

    python -m benchmarks.run                 # all scenarios, 3 rounds x 5 s each side (make bench)
    python -m benchmarks.run --quick         # 1 round x 2 s: a sanity pass, not figures to publish
    python -m benchmarks.run --only S3,S6    # a subset (results are written only for a full run unless --output)

What it does: generates the certificates (RSA-2048 and ECDSA P-256 chains), starts one nginx upstream (HTTP,
HTTPS, HTTPS with ``ssl_verify_client on``; ``return 200`` with a small body, and a 1 MiB file), then for each
scenario (``scenarios.py``) starts the gateway (a real ``gateway start`` process, DB-less) and nginx configured as the
equivalent proxy, for S1-S3 and S5 also the floor (``floor.py``, the least a Python proxy on the same libraries costs),
warms them up, and runs the same load against them in an order rotated from round to round. Then it measures the RSS of
1,000 idle keepalive TLS connections on each, writes ``benchmarks/RESULTS.md`` and ``benchmarks/ratios.png``, and
stops every process it started, also on failure or Ctrl-C. Everything is on loopback; every load run is bounded.

The machine is shared with whatever else runs: start it on an otherwise idle machine, and read the per-round lines
it prints to see the noise.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from benchmarks.idle_connections import measure_idle
from benchmarks.nginx_configs import BIG_BODY_SIZE, upstream_conf
from benchmarks.pki import make_pki
from benchmarks.processes import Processes, free_port, probe
from benchmarks.report import IdleMemory, render_markdown, write_chart
from benchmarks.scenarios import SCENARIOS, Environment, ScenarioResult, run_scenario, start_gateway, start_nginx_proxy

__all__ = ["main", "prepare_environment"]

HERE = Path(__file__).resolve().parent


@contextlib.contextmanager
def prepare_environment(workdir: Path) -> Iterator[tuple[Environment, Processes]]:
    """Certificates, the 1 MiB body and the running upstream; everything stopped on exit."""
    pki_dir = workdir / "pki"
    pki = {kind: make_pki(pki_dir, kind) for kind in ("ecdsa", "rsa")}
    (pki_dir / "big.bin").write_bytes(bytes(range(256)) * (BIG_BODY_SIZE // 256))
    ports = free_port(), free_port(), free_port()
    with Processes() as procs:
        conf = upstream_conf(workdir / "upstream", *ports, pki_dir)
        procs.nginx(workdir / "upstream", conf, ports[0])
        probe(f"http://127.0.0.1:{ports[0]}/")
        env = Environment(workdir, pki, pki_dir, *ports)
        yield env, procs


def _check_tools() -> None:
    missing = [tool for tool in ("wrk", "ab", "openssl") if shutil.which(tool) is None]
    if missing:
        sys.exit(f"missing tools: {', '.join(missing)} (make system-deps)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="A/B rounds per scenario (default 3)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per load run (default 5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up per proxy (default 1)")
    parser.add_argument("--quick", action="store_true", help="1 round of 2 s: a sanity pass")
    parser.add_argument("--only", default="", help="comma list of scenario keys (S1,S3,S5-rsa,...)")
    parser.add_argument("--idle-connections", type=int, default=1000, help="0 skips the idle-memory measurement")
    parser.add_argument("--output", type=Path, default=None, help="where to write RESULTS.md (default: benchmarks/)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.duration, args.warmup = 1, 2.0, 0.5
    _check_tools()
    wanted = {k.strip() for k in args.only.split(",") if k.strip()}
    unknown = wanted - {s.key for s in SCENARIOS}
    if unknown:
        sys.exit(f"unknown scenarios: {', '.join(sorted(unknown))}")
    scenarios = [s for s in SCENARIOS if not wanted or s.key in wanted]
    output = args.output or (HERE / "RESULTS.md" if not wanted and not args.quick else None)
    results: list[ScenarioResult] = []
    idle: IdleMemory | None = None
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as tmp, prepare_environment(Path(tmp)) as (env, procs):
        for scenario in scenarios:
            print(f"{scenario.key}: {scenario.title}", flush=True)
            results.append(run_scenario(scenario, env, args.rounds, args.duration, args.warmup, log=_log))
        if args.idle_connections > 0:
            s2 = next(s for s in SCENARIOS if s.key == "S2")
            per_conn = {}
            for name, start in (("gateway", start_gateway), ("nginx", start_nginx_proxy)):
                server = start(procs, s2, env)
                per_conn[name] = measure_idle(server, args.idle_connections)
                procs.stop(server)
                _log(f"  idle {name:7s} {per_conn[name]:.1f} KiB per connection")
            idle = IdleMemory(args.idle_connections, per_conn["gateway"], per_conn["nginx"])
    _print_summary(results)
    if output is not None:
        args_used = argv if argv is not None else sys.argv[1:]
        command = "`make bench` (`python -m benchmarks.run" + (" " + shlex.join(args_used) if args_used else "") + "`)"
        chart_path = output.with_name("ratios.png")
        chart = chart_path.name if write_chart(results, chart_path) else None
        notes = [
            "The machine has 2 cores shared by the load generator (1 thread), the proxy under test and the upstream "
            "nginx; other work on the machine adds noise, which the A/B alternation spreads over both sides.",
            "The gateway's TLS is pyOpenSSL over the OpenSSL bundled with `cryptography`; nginx uses the system "
            "OpenSSL 3.0: both do the same handshakes and record work, but not with the same library build.",
            "S4: ab's percentiles are whole milliseconds.",
            "S5: with handshakes, the load generator's side of each handshake costs as much CPU as the server's "
            "(ECDSA) and all of it shares 2 cores, so handshakes/s swings widely between rounds; the CPU ratio "
            "(server CPU per handshake) is the steadier capacity figure there.",
        ]
        output.write_text(render_markdown(results, idle, command, args.rounds, args.duration, chart, notes))
        (output.with_name("results.json")).write_text(json.dumps([r.to_json() for r in results], indent=1) + "\n")
        print(f"wrote {output.name} and {chart or 'no chart'} in {output.parent.name}/")
    return 0


def _log(line: str) -> None:
    print(line, flush=True)


def _print_summary(results: list[ScenarioResult]) -> None:
    for r in results:
        metric = r.scenario.metric
        floor = f"  floor {r.floor.headline(metric):>10,.1f} ({r.floor_ratio:.2f})" if r.floor is not None else ""
        print(
            f"{r.scenario.key:9s} gateway {r.gateway.headline(metric):>10,.1f}  "
            f"nginx {r.nginx.headline(metric):>10,.1f}  {metric:12s} ratio {r.ratio:.2f}{floor}  "
            f"cpu us/req gw {r.gateway.cpu_us_per_request:.1f} nginx {r.nginx.cpu_us_per_request:.1f}"
            + (f" floor {r.floor.cpu_us_per_request:.1f}" if r.floor is not None else "")
        )


if __name__ == "__main__":
    sys.exit(main())
