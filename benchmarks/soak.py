"""The soak (issue 11): a long keepalive run, then many new TLS connections, through a 2-worker gateway, with the
memory and descriptors of every gateway process sampled all along. A benchmark, not a test: it prints and writes
figures, and fails only on errors under load.

    python -m benchmarks.soak                                  # 1,000,000 requests, 20,000 handshakes (make soak)
    python -m benchmarks.soak --requests 100000 --handshakes 4000 --interval 2 --output /some/where/SOAK.md
    python -m benchmarks.soak --env MALLOC_ARENA_MAX=2          # the same with a variable added to the gateway's env
    python -m benchmarks.soak --probe                          # + Python and malloc figures from inside the workers

Set-up: the benchmark kit's certificates and nginx upstream (``run.prepare_environment``), and the gateway as a real
``gateway start`` process (``scenarios.start_gateway``) configured as scenario S3 - HTTPS downstream (ECDSA chain),
HTTPS upstream with ``tls_verify``, a CA set and a client certificate, keepalive on both sides - with
``KONG_WORKER_PROCESSES=2`` and otherwise the gateway's defaults (session tickets on, session cache on). S3 is the
most representative path: both TLS directions, the upstream pool and verification all run on every request.

Phases, each bounded in time and run in ``--batches`` batches with a sample after each batch (at ~1,000 handshakes/s
a 10 s period alone would leave phase 2 with two or three points):

1. ``keepalive``: ``--requests`` keepalive requests with wrk (1 thread, ``--connections`` connections; a Lua script
   stops wrk after its share: ``loadgen.run_wrk_requests``); each batch is a new wrk run, so new connections;
2. ``handshakes``: ``--handshakes`` new TLS connections with ``ab -n`` without ``-k`` (``--concurrency`` at a time):
   one full TLS 1.3 handshake and one proxied request each; ab never offers a saved session, so none is resumed
   (``loadgen.run_ab_connections``);
3. ``idle``: ``--idle`` seconds without traffic (does anything come back?).

Every ``--interval`` seconds (and after each batch) a sample is taken: ``VmRSS``, ``RssAnon``, open descriptors
(``/proc/<pid>/fd``) and threads of the master, the zygote and each worker (the master's descendants, told apart by
their process titles), and the counters of ``GET /status`` (``server.total_requests``, ``server.connections_handled``,
summed over the workers by the master). Samples are printed as a table while running. The standard run (default
scale, no ``--env``, no ``--probe``) writes them to ``benchmarks/SOAK.md``, with the samples as JSON (``soak.json``)
and a chart (``soak.png``, when matplotlib, the ``bench`` extra, is installed) next to it; any other run writes
only with ``--output``. Everything listens on loopback, and every process started here is stopped at the end, also
on failure or Ctrl-C (``processes.Processes``).

``--probe`` adds the debug-only probe (``benchmarks/memprobe/sitecustomize.py``) to the gateway's ``PYTHONPATH``:
each worker then reports its Python objects, allocator blocks and glibc ``mallinfo2`` figures, which the samples
carry for the workers, and at the very end does one ``gc.collect()`` + ``malloc_trim(0)`` whose effect on RSS is
reported. ``--probe-trim`` makes the probe call ``malloc_trim(0)`` after each reading (a comparison curve).

``SOAK.md`` is generated down to a marker line; what follows the marker (the hand-written investigation) is kept when
the file is rewritten.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import shutil
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.loadgen import LoadResult, run_ab_connections, run_wrk_requests
from benchmarks.processes import ProcessFigures, descendants, free_port, probe, read_process
from benchmarks.report import machine_facts
from benchmarks.run import prepare_environment
from benchmarks.scenarios import SCENARIOS, start_gateway, url_of

__all__ = ["Sample", "Sampler", "SoakResult", "main", "reading", "render_markdown", "run_soak", "samples_table"]

HERE = Path(__file__).resolve().parent
PROBE_PATH = HERE / "memprobe"
KEEP_MARKER = "<!-- Everything below this line is hand-written: benchmarks.soak keeps it when it rewrites the file. -->"
_MIB = 1024.0


@dataclass(frozen=True)
class Sample:
    """The gateway at one instant: per process (label -> figures) and the proxy's counters so far; with ``--probe``,
    each worker's latest probe reading (label -> the JSON record of ``memprobe``)."""

    seconds: float  # since the sampler started
    phase: str
    requests: int  # server.total_requests
    connections: int  # server.connections_handled (every TLS connection that completed its handshake)
    processes: dict[str, ProcessFigures]
    probes: dict[str, dict[str, Any]] = field(default_factory=dict)


class Sampler:
    """Takes a ``Sample`` every ``interval`` seconds on its own thread, and on demand (``sample``); prints each.

    Labels: ``master``, ``zygote``, then ``worker 1``, ``worker 2``... in the order their pids are first seen (a
    respawned worker gets a new label, so a death shows as a column that stops).
    """

    def __init__(
        self,
        master_pid: int,
        status_url: str,
        interval: float,
        log: Callable[[str], None],
        probe_dir: Path | None = None,
    ) -> None:
        self.master_pid = master_pid
        self.status_url = status_url
        self.interval = interval
        self.log = log
        self.probe_dir = probe_dir
        self.phase = "start"
        self.samples: list[Sample] = []
        self.pids: dict[str, int] = {}
        self._labels: dict[int, str] = {}
        self._workers = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-sampler", daemon=True)
        self._started = time.monotonic()
        self._header_printed = False

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sample()
            except Exception as exc:  # a failed sample must not end the soak: say so and carry on
                self.log(f"  sample failed: {exc!r}")

    def _label(self, figures: ProcessFigures) -> str:
        label = self._labels.get(figures.pid)
        if label is None:
            if figures.pid == self.master_pid:
                label = "master"
            elif "zygote" in figures.title:
                label = "zygote"
            elif "worker" in figures.title:
                self._workers += 1
                label = f"worker {self._workers}"
            else:
                label = f"pid {figures.pid}"
            self._labels[figures.pid] = label
            self.pids[label] = figures.pid
        return label

    def _counters(self) -> tuple[int, int]:
        with urllib.request.urlopen(self.status_url, timeout=5) as response:
            server = json.load(response)["server"]
        return int(server["total_requests"]), int(server["connections_handled"])

    def sample(self) -> Sample:
        """Read every process and the counters now; record and print the sample."""
        with self._lock:
            requests, connections = self._counters()
            processes: dict[str, ProcessFigures] = {}
            for pid in [self.master_pid, *descendants(self.master_pid)]:
                figures = read_process(pid)
                if figures is not None:
                    processes[self._label(figures)] = figures
            probes: dict[str, dict[str, Any]] = {}
            if self.probe_dir is not None:
                for label, figures in processes.items():
                    if label.startswith("worker"):
                        reading = fresh_probe(self.probe_dir, figures.pid, time.time(), 3 * self.interval)
                        if reading is not None:
                            probes[label] = reading
            sample = Sample(time.monotonic() - self._started, self.phase, requests, connections, processes, probes)
            self.samples.append(sample)
            self._print(sample)
            return sample

    def _print(self, sample: Sample) -> None:
        if not self._header_printed:
            self._header_printed = True
            names = "  ".join(f"{label:>16s}" for label in sample.processes)
            self.log(f"{'t s':>7s} {'phase':10s} {'requests':>10s} {'TLS conns':>9s}  {names}   (RSS MiB / fds)")
        cells = "  ".join(f"{_cell(f):>16s}" for f in sample.processes.values())
        probes = "".join(f"  [{label}: {_probe_cell(p)}]" for label, p in sample.probes.items())
        counters = f"{sample.requests:>10,d} {sample.connections:>9,d}"
        self.log(f"{sample.seconds:7.1f} {sample.phase:10s} {counters}  {cells}{probes}")


def latest_probe(directory: Path, pid: int) -> dict[str, Any] | None:
    """The last reading the probe of ``pid`` wrote (it writes one per period), or None."""
    try:
        lines = (directory / f"{pid}.jsonl").read_text().splitlines()
    except OSError:
        return None
    return json.loads(lines[-1]) if lines else None


def fresh_probe(directory: Path, pid: int, since: float, wait: float) -> dict[str, Any] | None:
    """The first reading of ``pid``'s probe taken at ``since`` or later (its period is at most 1 s), waiting up to
    ``wait`` seconds (at most 3) for it; None if none came."""
    deadline = time.monotonic() + min(wait, 3.0)
    while True:
        reading = latest_probe(directory, pid)
        if reading is not None and reading["time"] >= since:
            return reading
        if time.monotonic() > deadline:
            return None
        time.sleep(0.05)


def _cell(figures: ProcessFigures | None) -> str:
    return "-" if figures is None else f"{figures.rss_kib / _MIB:.1f} / {figures.fds}"


def _probe_cell(reading: dict[str, Any]) -> str:
    return (
        f"objects {reading['objects']:,} blocks {reading['blocks']:,} malloc used "
        f"{reading['malloc_used'] / 2**20:.1f} free {reading['malloc_free'] / 2**20:.1f} MiB"
    )


# ---------------------------------------------------------------------------------------------- the run


@dataclass
class PhaseResult:
    """What the load generator saw in one phase (all batches)."""

    name: str
    requests: int = 0
    seconds: float = 0.0
    errors: int = 0

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def add(self, load: LoadResult) -> None:
        self.requests += load.requests
        self.seconds += load.seconds
        self.errors += load.errors


@dataclass
class SoakResult:
    samples: list[Sample]
    phases: list[PhaseResult]
    trims: dict[str, dict[str, Any]]  # --probe: worker label -> the probe's gc.collect + malloc_trim record


def _batches(total: int, count: int) -> list[int]:
    count = max(1, min(count, total))
    base, extra = divmod(total, count)
    return [base + (1 if index < extra else 0) for index in range(count)]


def _gateway_env(args: argparse.Namespace, admin_port: int, probe_dir: Path | None) -> dict[str, str]:
    extra = {"KONG_WORKER_PROCESSES": str(args.workers), "KONG_ADMIN_LISTEN": f"127.0.0.1:{admin_port}"}
    if probe_dir is not None:
        extra["PYTHONPATH"] = str(PROBE_PATH)
        extra["GATEWAY_SOAK_PROBE_DIR"] = str(probe_dir)
        extra["GATEWAY_SOAK_PROBE_PERIOD"] = str(min(1.0, args.interval))
        if args.probe_trim:
            extra["GATEWAY_SOAK_PROBE_TRIM"] = "1"
    extra.update(args.env)
    return extra


def run_soak(args: argparse.Namespace, log: Callable[[str], None]) -> SoakResult:
    """Set up, run the three phases, sample all along; every process stopped on the way out."""
    s3 = next(s for s in SCENARIOS if s.key == "S3")
    phases = [PhaseResult("keepalive"), PhaseResult("handshakes")]
    with tempfile.TemporaryDirectory(prefix="gateway-soak-") as tmp, prepare_environment(Path(tmp)) as (env, procs):
        probe_dir = Path(tmp) / "probe" if args.probe else None
        if probe_dir is not None:
            probe_dir.mkdir()
        admin_port = free_port()
        extra = _gateway_env(args, admin_port, probe_dir)
        server = start_gateway(procs, s3, env, args.source, name="soak", extra_env=extra)
        url = url_of(s3, server)
        probe(url)
        sampler = Sampler(server.pid, f"http://127.0.0.1:{admin_port}/status", args.interval, log, probe_dir)
        with sampler:
            sampler.sample()
            sampler.phase = "keepalive"
            for size in _batches(args.requests, args.batches):
                load = run_wrk_requests(url, size, args.connections, timeout=args.batch_timeout)
                phases[0].add(load)
                _check(load, "keepalive", server.proc.poll())
                sampler.sample()
            sampler.phase = "handshakes"
            for size in _batches(args.handshakes, args.batches):
                load = run_ab_connections(url, size, args.concurrency, timeout=args.batch_timeout)
                phases[1].add(load)
                _check(load, "handshakes", server.proc.poll())
                sampler.sample()
            sampler.phase = "idle"
            deadline = time.monotonic() + args.idle
            while time.monotonic() < deadline and server.proc.poll() is None:
                time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
            sampler.sample()
        trims = _trim_workers(probe_dir, sampler.pids, log) if probe_dir is not None else {}
        return SoakResult(sampler.samples, phases, trims)


def _trim_workers(probe_dir: Path, pids: dict[str, int], log: Callable[[str], None]) -> dict[str, dict[str, Any]]:
    """Ask each worker's probe for one ``gc.collect()`` + ``malloc_trim(0)`` and collect the answers (bounded)."""
    workers = {label: pid for label, pid in pids.items() if label.startswith("worker")}
    for pid in workers.values():
        (probe_dir / f"{pid}.trim").touch()
    found: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + 15
    while len(found) < len(workers) and time.monotonic() < deadline:
        for label, pid in workers.items():
            reading = latest_probe(probe_dir, pid)
            if label not in found and reading is not None and reading.get("action") == "trim":
                found[label] = reading
        time.sleep(0.2)
    for label, record in found.items():
        log(f"  {label}: {_trim_text(record)}")
    return found


def _trim_text(record: dict[str, Any]) -> str:
    before, after_gc, after_trim = record["before"], record["after_gc"], record["after_trim"]
    return (
        f"gc.collect() found {record['collected']} objects; RSS {before['rss_kib'] / _MIB:.1f} -> "
        f"{after_gc['rss_kib'] / _MIB:.1f} MiB after it -> {after_trim['rss_kib'] / _MIB:.1f} MiB after "
        f"malloc_trim(0); malloc in use {before['malloc_used'] / 2**20:.2f} -> {after_trim['malloc_used'] / 2**20:.2f}"
        f" MiB, free in the heap {before['malloc_free'] / 2**20:.2f} -> {after_trim['malloc_free'] / 2**20:.2f} MiB"
        + _garbage_text(record.get("garbage") or [])
    )


def _garbage_text(kinds: list[list[Any]]) -> str:
    """The types the collection found most of (``module.Class`` x count), gateway and OpenSSL ones first."""
    if not kinds:
        return ""
    ours = [(name, count) for name, count in kinds if name.startswith(("gateway.", "OpenSSL."))]
    shown = ours or [(name, count) for name, count in kinds[:5]]
    return "; the collection found " + ", ".join(f"{count} {name.rsplit('.', 1)[-1]}" for name, count in shown)


def _check(load: LoadResult, phase: str, exit_code: int | None) -> None:
    if exit_code is not None:
        raise RuntimeError(f"{phase}: the gateway exited ({exit_code})")
    if load.errors:
        raise RuntimeError(f"{phase}: {load.errors} errors under load:\n{load.raw}")


# ---------------------------------------------------------------------------------------------- the report


def _labels(samples: Sequence[Sample]) -> list[str]:
    labels: list[str] = []
    for sample in samples:
        for label in sample.processes:
            if label not in labels:
                labels.append(label)
    return labels


def samples_table(samples: Sequence[Sample]) -> str:
    """Markdown: one row per sample, ``RSS MiB / fds`` per process."""
    labels = _labels(samples)
    lines = [
        "| t (s) | phase | requests | TLS connections | " + " | ".join(labels) + " |",
        "|---:|---|---:|---:|" + "---:|" * len(labels),
    ]
    for s in samples:
        cells = " | ".join(_cell(s.processes.get(label)) for label in labels)
        lines.append(f"| {s.seconds:.0f} | {s.phase} | {s.requests:,} | {s.connections:,} | {cells} |")
    return "\n".join(lines)


def probes_table(samples: Sequence[Sample]) -> str:
    """Markdown (``--probe``): per worker, Python objects / allocator blocks / malloc in use / malloc free."""
    labels = [label for label in _labels(samples) if any(label in s.probes for s in samples)]
    if not labels:
        return ""
    lines = [
        "| t (s) | phase | " + " | ".join(labels) + " |",
        "|---:|---|" + "---:|" * len(labels),
    ]
    for s in samples:
        cells = []
        for label in labels:
            p = s.probes.get(label)
            cells.append(
                "-"
                if p is None
                else f"{p['objects'] / 1000:.1f}k / {p['blocks'] / 1000:.1f}k / {p['malloc_used'] / 2**20:.2f} / "
                f"{p['malloc_free'] / 2**20:.2f}"
            )
        lines.append(f"| {s.seconds:.0f} | {s.phase} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _last_of(samples: Sequence[Sample], phase: str) -> Sample | None:
    found = [s for s in samples if s.phase == phase]
    return found[-1] if found else None


def _mib(sample: Sample | None, label: str, name: str = "rss_kib") -> float | None:
    if sample is None or label not in sample.processes:
        return None
    return float(getattr(sample.processes[label], name)) / _MIB


def _delta(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None else f"{b - a:+.2f}"


def reading(result: SoakResult) -> list[str]:
    """The figures a reader needs to judge the curve: growth per phase and process, and for the workers the growth
    per 1,000 handshakes in the first and the second half of phase 2 (a plateau shows as a second half near 0)."""
    samples, phases = result.samples, result.phases
    if not samples:
        return []
    start = samples[0]
    ends = {name: _last_of(samples, name) for name in ("keepalive", "handshakes", "idle")}
    out = [
        f"- Load: {p.name} {p.requests:,} requests in {p.seconds:.0f} s ({p.rate:,.0f}/s), {p.errors} errors"
        for p in phases
    ]
    out.append(
        "- RSS change in MiB per phase (keepalive, handshakes, idle), `RssAnon` change in brackets; descriptors and "
        "threads at the start and at the end:"
    )
    points = [start, ends["keepalive"], ends["handshakes"], ends["idle"]]
    for label in _labels(samples):
        rss = [_mib(p, label) for p in points]
        anon = [_mib(p, label, "anon_kib") for p in points]
        steps = ", ".join(f"{_delta(rss[i], rss[i + 1])} [{_delta(anon[i], anon[i + 1])}]" for i in range(3))
        first, last = start.processes.get(label), samples[-1].processes.get(label)
        fds = f"{first.fds if first else '-'} -> {last.fds if last else '-'}"
        threads = f"{first.threads if first else '-'} -> {last.threads if last else '-'}"
        out.append(f"  - {label}: {rss[0] or 0:.1f} MiB at the start; {steps}; fds {fds}; threads {threads}")
    out += _handshake_halves(samples, ends["keepalive"])
    out += _probe_lines(samples)
    out += [f"- {label}, at the end: {_trim_text(record)}" for label, record in result.trims.items()]
    return out


def _handshake_halves(samples: Sequence[Sample], before: Sample | None) -> list[str]:
    shakes = [s for s in samples if s.phase == "handshakes"]
    if not shakes or before is None:
        return []
    target = before.connections + (shakes[-1].connections - before.connections) / 2
    middle = min(shakes, key=lambda s: abs(s.connections - target))
    out = []
    for label in _labels(samples):
        if not label.startswith("worker"):
            continue
        halves = []
        for a, b in ((before, middle), (middle, shakes[-1])):
            ra, rb = _mib(a, label), _mib(b, label)
            n = b.connections - a.connections
            halves.append("-" if ra is None or rb is None or n <= 0 else f"{(rb - ra) * 1024 / n * 1000:+.0f} KiB")
        out.append(f"- {label}, RSS per 1,000 handshakes: first half of phase 2 {halves[0]}, second half {halves[1]}")
    return out


def _probe_lines(samples: Sequence[Sample]) -> list[str]:
    out = []
    for label in _labels(samples):
        readings = [s.probes[label] for s in samples if label in s.probes]
        if len(readings) < 2:
            continue
        a, b = readings[0], readings[-1]
        out.append(
            f"- {label}, probe, first -> last reading: Python objects {a['objects']:,} -> {b['objects']:,}, "
            f"allocator blocks {a['blocks']:,} -> {b['blocks']:,}, malloc in use {a['malloc_used'] / 2**20:.2f} -> "
            f"{b['malloc_used'] / 2**20:.2f} MiB, malloc free in the heap {a['malloc_free'] / 2**20:.2f} -> "
            f"{b['malloc_free'] / 2**20:.2f} MiB, RSS {a['rss_kib'] / _MIB:.1f} -> {b['rss_kib'] / _MIB:.1f} MiB"
        )
    return out


def render_markdown(result: SoakResult, args: argparse.Namespace, command: str, chart: str | None) -> str:
    today = datetime.date.today().isoformat()
    env_text = ", ".join(f"`{k}={v}`" for k, v in args.env.items())
    parts = [
        "# Soak: memory and descriptors over a long run",
        "",
        f"Date: {today}. Command: {command}.",
        "",
        "Machine: " + "; ".join(machine_facts()) + ".",
        "",
        f"The gateway (`gateway start`, `KONG_WORKER_PROCESSES={args.workers}`"
        + (f", {env_text}" if env_text else "")
        + ", otherwise the defaults: session tickets and session cache on) is set up as benchmark scenario S3: HTTPS "
        "downstream (ECDSA P-256 chain), HTTPS upstream with `tls_verify`, a CA set and a client certificate, "
        "keepalive both sides, in front of the benchmark kit's nginx upstream (`return 200`, 24 bytes). Phase "
        f"`keepalive`: {args.requests:,} keepalive requests with wrk (1 thread, {args.connections} connections per "
        f"batch); phase `handshakes`: {args.handshakes:,} new TLS connections with `ab -c {args.concurrency}` (no "
        "`-k`; ab never offers a saved session, so every connection is a full TLS 1.3 handshake), one proxied "
        f"request each; phase `idle`: {args.idle:g} s without traffic. Each phase runs in {args.batches} batches "
        f"(a new wrk or ab run each) with a sample after each batch, plus a sample every {args.interval:g} s. "
        "Per process: `VmRSS` in MiB / open descriptors. TLS connections = `server.connections_handled` of "
        "`GET /status` (handshakes completed), requests = `server.total_requests`.",
        "",
        samples_table(result.samples),
        "",
    ]
    probes = probes_table(result.samples)
    if probes:
        parts += [
            "Probe readings per worker (`--probe`): Python objects tracked by the collector / blocks of Python's "
            "allocator / malloc in use (MiB) / malloc free in the heap (MiB), glibc `mallinfo2()` over all arenas.",
            "",
            probes,
            "",
        ]
    if chart:
        parts += [f"![RSS and descriptors per process]({chart})", ""]
    parts += ["## This run", "", *reading(result), ""]
    return "\n".join(parts)


def _kept_tail(path: Path) -> str:
    try:
        text = path.read_text()
    except OSError:
        return ""
    index = text.find(KEEP_MARKER)
    return "" if index < 0 else text[index:]


def write_chart(samples: Sequence[Sample], path: Path) -> bool:
    """RSS (and, with the probe, malloc in use) and descriptors per process over time, phases shaded (matplotlib,
    the optional ``bench`` extra); False when it is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[bench]'): no chart", file=sys.stderr)
        return False
    fig, (ax_rss, ax_fds) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True, height_ratios=(3, 1))
    for label in _labels(samples):
        points = [(s.seconds, s.processes[label]) for s in samples if label in s.processes]
        line = ax_rss.plot([t for t, _ in points], [f.rss_kib / _MIB for _, f in points], marker=".", label=label)[0]
        ax_fds.plot([t for t, _ in points], [f.fds for _, f in points], marker=".", label=label)
        probed = [(s.seconds, s.probes[label]) for s in samples if label in s.probes]
        if probed:
            ax_rss.plot(
                [t for t, _ in probed],
                [p["malloc_used"] / 2**20 for _, p in probed],
                linestyle="--",
                color=line.get_color(),
                label=f"{label}: malloc in use",
            )
    shades = {"keepalive": "#e8f0fb", "handshakes": "#fbeee8", "idle": "#eeeeee"}
    for phase, colour in shades.items():
        times = [s.seconds for s in samples if s.phase == phase]
        if not times:
            continue
        earlier = [s.seconds for s in samples if s.seconds < times[0]]
        left = earlier[-1] if earlier else times[0]
        for ax in (ax_rss, ax_fds):
            ax.axvspan(left, times[-1], color=colour, zorder=0)
        ax_rss.annotate(
            phase, ((left + times[-1]) / 2, 1.0), xycoords=("data", "axes fraction"), ha="center", va="bottom"
        )
    probed_any = any(s.probes for s in samples)
    ax_rss.set_ylabel("MiB (VmRSS; dashed: malloc in use)" if probed_any else "VmRSS (MiB)")
    ax_fds.set_ylabel("open fds")
    ax_fds.set_xlabel("seconds since the start")
    ax_rss.legend(loc="center left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


# ---------------------------------------------------------------------------------------------- command line


def _env_pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1_000_000, help="keepalive requests (default 1,000,000)")
    parser.add_argument("--handshakes", type=int, default=20_000, help="new TLS connections (default 20,000)")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between samples (default 10)")
    parser.add_argument("--batches", type=int, default=10, help="batches per phase, a sample after each (10)")
    parser.add_argument("--idle", type=float, default=30.0, help="seconds of idle sampling at the end (default 30)")
    parser.add_argument("--workers", type=int, default=2, help="KONG_WORKER_PROCESSES (default 2)")
    parser.add_argument("--connections", type=int, default=50, help="wrk connections in phase 1 (default 50)")
    parser.add_argument("--concurrency", type=int, default=8, help="ab concurrency in phase 2 (default 8)")
    parser.add_argument("--batch-timeout", type=float, default=600.0, help="upper bound of one batch, s (600)")
    parser.add_argument(
        "--env",
        type=_env_pair,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="add to the gateway's environment (repeatable), e.g. MALLOC_ARENA_MAX=2",
    )
    parser.add_argument(
        "--source",
        type=Path,
        default=None,
        help="run the gateway package of this directory (another copy of the tree) instead of this checkout's",
    )
    parser.add_argument("--probe", action="store_true", help="Python and malloc figures from inside the workers")
    parser.add_argument("--probe-trim", action="store_true", help="--probe, and malloc_trim(0) after each reading")
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="where to write the report (default: benchmarks/SOAK.md for the standard run, nothing otherwise)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    args.env = dict(args.env)
    args.probe = args.probe or args.probe_trim
    missing = [tool for tool in ("wrk", "ab") if shutil.which(tool) is None]
    if missing:
        sys.exit(f"missing tools: {', '.join(missing)} (make system-deps)")
    try:
        result = run_soak(args, _log)
    except KeyboardInterrupt:
        print("interrupted: every process stopped, nothing written", file=sys.stderr)
        return 130
    for line in reading(result):
        print(line)
    standard = (args.requests, args.handshakes) == (1_000_000, 20_000) and not (args.env or args.probe or args.source)
    output = args.output or (HERE / "SOAK.md" if standard else None)
    if output is not None:
        _write(result, args, output, argv if argv is not None else sys.argv[1:])
    return 0


def _write(result: SoakResult, args: argparse.Namespace, output: Path, used: list[str]) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    command = "`make soak` (`python -m benchmarks.soak" + (" " + shlex.join(used) if used else "") + "`)"
    chart_path = output.with_name(output.stem.lower() + ".png")
    chart = chart_path.name if write_chart(result.samples, chart_path) else None
    tail = _kept_tail(output)
    output.write_text(render_markdown(result, args, command, chart) + "\n" + (tail or KEEP_MARKER + "\n"))
    samples = [asdict(s) for s in result.samples]
    for sample in samples:  # titles carry the command line, with the machine's paths: not worth keeping
        for figures in sample["processes"].values():
            figures.pop("title", None)
    data = {"samples": samples, "trims": result.trims}
    json_path = output.with_name(output.stem.lower() + ".json")
    json_path.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {output.name}, {json_path.name} and {chart or 'no chart'} in {output.parent}")


def _log(line: str) -> None:
    print(line, flush=True)


if __name__ == "__main__":
    sys.exit(main())
