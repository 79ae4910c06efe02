"""Turn scenario results into ``RESULTS.md`` (one Markdown table + the targets) and a PNG chart of the ratios."""

from __future__ import annotations

import datetime
import math
import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

from benchmarks.scenarios import ScenarioResult

__all__ = ["IdleMemory", "machine_facts", "render_markdown", "results_table", "targets", "write_chart"]


@dataclass
class IdleMemory:
    """RSS growth for ``connections`` idle keepalive TLS client connections, per server."""

    connections: int
    gateway_kib_per_conn: float
    nginx_kib_per_conn: float


def machine_facts() -> list[str]:
    """Cores, CPU model, Python, OpenSSL on both sides, nginx: what a reader needs to compare with their run."""
    from OpenSSL import SSL

    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import subprocess

    from benchmarks.processes import nginx_binary
    from gateway.compiled import describe

    nginx_v = subprocess.run([nginx_binary(), "-V"], capture_output=True, text=True).stderr.splitlines()
    system_openssl = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout.strip()
    import uvloop

    return [
        f"{os.cpu_count()} cores ({cpu}), Linux {platform.release()}",
        f"Python {platform.python_version()}, uvloop {uvloop.__version__}, "
        f"pyOpenSSL over {SSL.OpenSSL_version(SSL.OPENSSL_VERSION).decode()} (the gateway's TLS, both ways)",
        f"the gateway's request path {describe()}",
        f"{nginx_v[0] if nginx_v else 'nginx'}, {nginx_v[1] if len(nginx_v) > 1 else ''}".strip(", "),
        f"load generators: wrk, ab; system {system_openssl}",
    ]


def _fmt(value: float, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def results_table(results: list[ScenarioResult]) -> str:
    """The Markdown table: headline figure for the gateway, the floor (S1-S3, S5) and nginx, the ratios to nginx,
    latency, CPU µs per request for each, peak RSS."""
    lines = [
        "| Scenario | Metric | gateway | floor | nginx | ratio | floor ratio | p50 ms gw / nginx | p99 ms gw / nginx "
        "| CPU µs/req gw / floor / nginx | CPU ratio | peak RSS MiB gw / nginx |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        s = r.scenario
        digits = 1 if s.metric == "MB/s" else 0
        floor = r.floor
        floor_value = _fmt(floor.headline(s.metric), digits) if floor is not None else "-"
        floor_cpu = _fmt(floor.cpu_us_per_request, 1) if floor is not None else "-"
        lines.append(
            f"| **{s.key}** {s.title} | {s.metric} | {_fmt(r.gateway.headline(s.metric), digits)} "
            f"| {floor_value} | {_fmt(r.nginx.headline(s.metric), digits)} | **{_fmt(r.ratio, 2)}** "
            f"| {_fmt(r.floor_ratio, 2)} "
            f"| {_fmt(r.gateway.p50_ms, 2)} / {_fmt(r.nginx.p50_ms, 2)} "
            f"| {_fmt(r.gateway.p99_ms, 2)} / {_fmt(r.nginx.p99_ms, 2)} "
            f"| {_fmt(r.gateway.cpu_us_per_request, 1)} / {floor_cpu} / {_fmt(r.nginx.cpu_us_per_request, 1)} "
            f"| {_fmt(r.cpu_ratio, 2)} "
            f"| {_fmt(r.gateway.peak_rss_mib, 1)} / {_fmt(r.nginx.peak_rss_mib, 1)} |"
        )
    return "\n".join(lines)


def targets(results: list[ScenarioResult], idle: IdleMemory | None) -> list[str]:
    """The issue's targets, each with the figure measured in this run and whether it is met."""
    by_key = {r.scenario.key: r for r in results}
    out: list[str] = []

    def verdict(ok: bool) -> str:
        return "met" if ok else "**not met**"

    s3 = by_key.get("S3")
    for key, target in (("S1", 0.7), ("S2", 0.65), ("S3", 0.6)):
        row = by_key.get(key)
        if row is not None:
            out.append(f"- {key} >= {target} x nginx req/s: {row.ratio:.2f} ({verdict(row.ratio >= target)})")
    if s3 is not None:
        p99 = s3.gateway.p99_ms / s3.nginx.p99_ms if s3.nginx.p99_ms else float("nan")
        out.append(f"- S3 p99 <= 2 x nginx's: {p99:.2f} x ({verdict(p99 <= 2)})")
    for key in ("S5-rsa", "S5-ecdsa"):
        s5 = by_key.get(key)
        if s5 is not None:
            out.append(f"- {key} >= 0.95 x nginx handshakes/s: {s5.ratio:.2f} ({verdict(s5.ratio >= 0.95)})")
    s6 = by_key.get("S6")
    if s3 is not None and s6 is not None and s6.gateway.rps:
        gain = s3.gateway.rps / s6.gateway.rps
        out.append(f"- pooling (S3 / S6, gateway req/s) >= 8: {gain:.2f} x ({verdict(gain >= 8)})")
    if idle is not None:
        out.append(
            f"- <= 64 KiB RSS per idle keepalive TLS client connection ({idle.connections} connections): "
            f"{idle.gateway_kib_per_conn:.1f} KiB ({verdict(idle.gateway_kib_per_conn <= 64)}); "
            f"nginx {idle.nginx_kib_per_conn:.1f} KiB"
        )
    return out


def scaling(results: list[ScenarioResult]) -> list[str]:
    """For each ``-all`` row: how much each side gained from all cores over its one-worker row of the same run."""
    by_key = {r.scenario.key: r for r in results}
    out: list[str] = []
    for r in results:
        if not r.scenario.all_cores:
            continue
        single = by_key.get(r.scenario.key.removesuffix("-all"))
        metric = r.scenario.metric
        line = f"- {r.scenario.key}: gateway / nginx {r.ratio:.2f}"
        if single is not None and single.gateway.headline(metric) and single.nginx.headline(metric):
            gw = r.gateway.headline(metric) / single.gateway.headline(metric)
            ngx = r.nginx.headline(metric) / single.nginx.headline(metric)
            line += f"; all cores / one worker: gateway {gw:.2f} x, nginx {ngx:.2f} x"
        out.append(line)
    return out


def render_markdown(
    results: list[ScenarioResult],
    idle: IdleMemory | None,
    command: str,
    rounds: int,
    duration: float,
    chart: str | None,
    notes: list[str],
) -> str:
    """The whole ``RESULTS.md``."""
    today = datetime.date.today().isoformat()
    parts = [
        "# Benchmark results",
        "",
        f"Date: {today}. Command: {command} ({rounds} rounds of {duration:g} s per proxy and scenario, A/B "
        "alternating; medians shown).",
        "",
        "Machine: " + "; ".join(machine_facts()) + ".",
        "",
        "Both proxies run **one worker** (nginx `worker_processes 1`, the gateway a single process), except the "
        "`-all` rows: **all cores** on both sides (nginx `worker_processes auto` with `listen ... reuseport`, the "
        "gateway `worker_processes = auto`: its master plus one worker per core, forked by its zygote), with access "
        "logs off (`proxy_access_log = off` / `access_log off`), `log_level = notice`, the same certificates, the same "
        "verify settings and upstream keepalive on (except S6), in front of the same nginx upstream (`return 200`, "
        "a 24-byte body; a 1 MiB file for S7). ratio = gateway / nginx (req/s, handshakes/s or MB/s). The **floor** "
        "(S1-S3 and S5, `benchmarks/floor.py`) is the least a Python proxy on the same libraries costs: GETs "
        "forwarded with a fixed head on pooled upstream connections (S5: answered, then closed), TLS with the "
        "socket as the BIO and direct `SSL_read`/`SSL_write`, no routing, "
        "headers, plugins or logs; floor ratio = floor / nginx, so gateway / floor is the cost of Kong's semantics "
        "and our own overhead. CPU is the server process tree's utime + stime during the run, per request; "
        "CPU ratio = nginx's CPU per request / the gateway's, "
        "the capacity ratio if each had a core to itself (the load generator and the upstream share the same 2 "
        "cores, so the throughput ratio also depends on what they leave); peak RSS is VmHWM.",
        "",
        results_table(results),
        "",
    ]
    if chart:
        parts += [f"![ratios gateway / nginx]({chart})", ""]
    parts += ["## Targets (issue 15, one worker each, same run)", "", *targets(results, idle), ""]
    scaled = scaling(results)
    if scaled:
        parts += ["## All cores vs all cores (same run)", "", *scaled, ""]
    if notes:
        parts += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    return "\n".join(parts)


def write_chart(results: list[ScenarioResult], path: Path) -> bool:
    """A bar chart of the ratios (matplotlib, the optional ``bench`` extra); False when it is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[bench]'): no chart", file=sys.stderr)
        return False
    keys = [r.scenario.key for r in results]
    ratios = [r.ratio for r in results]
    fig, ax = plt.subplots(figsize=(11, 4))
    bars = ax.bar(keys, ratios, color="#3b7dd8")
    ax.axhline(1.0, color="#444", linewidth=1, linestyle="--", label="nginx = 1.0")
    for bar, value in zip(bars, ratios, strict=True):
        ax.annotate(f"{value:.2f}", (bar.get_x() + bar.get_width() / 2, value), ha="center", va="bottom", fontsize=9)
    ax.set_ylabel("gateway / nginx")
    ax.set_title("Gateway vs nginx, one worker each; -all: all cores each (higher is better)")
    ax.set_ylim(0, max([1.1, *[r * 1.15 for r in ratios if not math.isnan(r)]]))
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
