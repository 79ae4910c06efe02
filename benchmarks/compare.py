"""Before/after figures for a hot-path change: two copies of the gateway and nginx, same scenario, alternating.

    python -m benchmarks.compare S3 --before /tmp/gw-before [--rounds 5] [--duration 5]
    python -m benchmarks.compare S3 --plugin prometheus='{"status_code_metrics": true}' [--rounds 3] [--duration 4]

``--before`` is a directory holding the older ``gateway`` package (for example ``git archive <commit> gateway |
tar -x -C /tmp/gw-before``); the current checkout is "after". ``--plugin NAME[=JSON config]`` (repeatable) compares
the current checkout with itself instead: "before" without the plugins, "after" with them configured globally.
The servers run side by side (for S1-S3 and S5 the floor, ``floor.py``, too) and each round runs them in a rotated
order, so machine noise hits all alike; medians are printed with the ratios to nginx, which is the figure that
survives a busy machine, and the CPU per request of each.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from benchmarks.processes import Processes
from benchmarks.run import prepare_environment
from benchmarks.scenarios import (
    FLOOR_SCENARIOS,
    SCENARIOS,
    drive,
    probe,
    rotated_rounds,
    start_floor,
    start_gateway,
    start_nginx_proxy,
    url_of,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario")
    parser.add_argument("--before", type=Path, help="the older gateway package (else --plugin)")
    parser.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="NAME[=JSON]",
        help="compare without / with this plugin configured globally (the current checkout on both sides)",
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=5.0)
    args = parser.parse_args()
    scenario = next((s for s in SCENARIOS if s.key == args.scenario), None)
    if scenario is None:
        sys.exit(f"unknown scenario {args.scenario}")
    if (args.before is None) == (not args.plugin):
        sys.exit("give either --before DIR or --plugin NAME[=JSON]")
    plugins = [_plugin(spec) for spec in args.plugin]
    values: dict[str, list[float]] = {"before": [], "after": [], "nginx": []}
    if scenario.key in FLOOR_SCENARIOS:
        values["floor"] = []
    p99: dict[str, list[float]] = {name: [] for name in values}
    cpu: dict[str, list[float]] = {name: [] for name in values}
    with tempfile.TemporaryDirectory() as tmp, prepare_environment(Path(tmp)) as (env, _), Processes() as procs:
        servers = {
            "before": start_gateway(procs, scenario, env, args.before.resolve() if args.before else None, "before"),
            "after": start_gateway(procs, scenario, env, None, "after", global_plugins=plugins),
            "nginx": start_nginx_proxy(procs, scenario, env),
        }
        if "floor" in values:
            servers["floor"] = start_floor(procs, scenario, env)
        client = None
        if scenario.verify_client:
            pki = env.pki[scenario.downstream_tls or "ecdsa"]
            client = (pki.client_chain, pki.client_key)
        for server in servers.values():
            probe(url_of(scenario, server), client)
            drive(scenario, env, server, 1.0)
        for index, name, m in rotated_rounds(scenario, env, servers, args.rounds, args.duration):
            value = m.load.mb_per_s if scenario.metric == "MB/s" else m.load.rps
            values[name].append(value)
            p99[name].append(m.load.p99_ms)
            cpu[name].append(m.cpu_us_per_request)
            print(f"  round {index + 1} {name:6s} {value:>10,.1f} {scenario.metric}", flush=True)
    base = statistics.median(values["nginx"])
    for name in values:
        med = statistics.median(values[name])
        print(
            f"{name:6s} median {med:>10,.1f} {scenario.metric}  ratio {med / base:.3f}  "
            f"p99 {statistics.median(p99[name]):.2f} ms  cpu {statistics.median(cpu[name]):.1f} us/req"
        )


def _plugin(spec: str) -> dict[str, object]:
    """``NAME`` or ``NAME={json config}`` -> a global plugin entity."""
    name, _, config = spec.partition("=")
    plugin: dict[str, object] = {"name": name}
    if config:
        plugin["config"] = json.loads(config)
    return plugin


if __name__ == "__main__":
    main()
