"""Server processes for the benchmarks: nginx, the real ``gateway`` and the floor (``floor.py``), started, probed,
measured and stopped.

Every process started here is registered with a ``Processes`` stack and stopped when it closes, also when a run
fails half-way (``with Processes() as procs: ...``). Readiness is never a fixed delay: nginx is ready when its
port accepts, the gateway when it prints ``Gateway started`` (it binds its listeners first), and a proxy is put
under load only after a probe request got a 2xx through it.

``read_cpu_mem`` reads ``/proc/<pid>/stat`` (utime + stime, in clock ticks) and ``/proc/<pid>/status`` (``VmHWM``,
``VmRSS``) for a process and its descendants: nginx does its work in a worker process, the gateway in its only one
(or, with ``worker_processes`` > 1, in the workers its zygote forked). ``read_process`` is one process's figures
(``VmRSS``, ``RssAnon``, open descriptors, title), what the soak (``benchmarks.soak``) samples per process.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from gateway.demo.ports import free_port

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "CpuMem",
    "ProcessFigures",
    "Processes",
    "Server",
    "descendants",
    "free_port",
    "nginx_binary",
    "probe",
    "read_cpu_mem",
    "read_process",
]

_TICKS = os.sysconf("SC_CLK_TCK")
_REPO = Path(__file__).resolve().parent.parent


def nginx_binary() -> str:
    for candidate in (shutil.which("nginx"), "/usr/sbin/nginx"):
        if candidate and os.path.exists(candidate):
            return candidate
    raise RuntimeError("nginx is not installed (make system-deps)")


@dataclass
class CpuMem:
    """CPU seconds used so far and memory figures of a process tree."""

    cpu_seconds: float
    peak_rss_kib: int  # sum of VmHWM over the tree
    rss_kib: int  # sum of VmRSS over the tree


def descendants(pid: int) -> list[int]:
    """Every descendant of ``pid``, depth first (the gateway's workers are its zygote's children)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    found = [int(p) for p in text.split()]
    return [grand for child in found for grand in (child, *descendants(child))]


def _status_kib(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _status_fields(pid: int, fields: tuple[str, ...]) -> dict[str, int]:
    """Several numeric fields of ``/proc/<pid>/status`` in one read (0 for a missing one)."""
    found = dict.fromkeys(fields, 0)
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in found:
                found[name] = int(value.split()[0])
    except OSError:
        pass
    return found


def read_cpu_mem(pid: int) -> CpuMem:
    """utime + stime and VmHWM/VmRSS of ``pid`` and its descendants (nginx master + workers; the gateway's master,
    zygote and workers)."""
    cpu = 0.0
    hwm = rss = 0
    for p in [pid, *descendants(pid)]:
        try:
            stat = Path(f"/proc/{p}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        cpu += (int(fields[11]) + int(fields[12])) / _TICKS  # fields 14 and 15 of proc(5), 0-based after comm
        hwm += _status_kib(p, "VmHWM")
        rss += _status_kib(p, "VmRSS")
    return CpuMem(cpu, hwm, rss)


@dataclass(frozen=True)
class ProcessFigures:
    """One process at one instant: resident memory (all of it, and its anonymous part: heap, stacks, arenas,
    where a leak shows; the rest is mapped files such as shared libraries), open descriptors, threads, title."""

    pid: int
    title: str
    rss_kib: int
    anon_kib: int
    fds: int
    threads: int


def read_process(pid: int) -> ProcessFigures | None:
    """``VmRSS``, ``RssAnon``, ``Threads``, the number of entries of ``/proc/<pid>/fd`` and the command line
    (``gateway: worker process`` ...: the gateway sets titles as nginx does); None when the process is gone."""
    try:
        title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    status = _status_fields(pid, ("VmRSS", "RssAnon", "Threads"))
    return ProcessFigures(pid, title, status["VmRSS"], status["RssAnon"], fds, status["Threads"])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """Connect attempts until something accepts; fail fast if ``proc`` died."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on port {port}") from None
            time.sleep(0.02)


def probe(url: str, client_cert: tuple[Path, Path] | None = None, timeout: float = 15.0) -> None:
    """One request through a proxy until it answers 2xx (the configuration is live), bounded in time."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if client_cert is not None:
        ctx.load_cert_chain(str(client_cert[0]), str(client_cert[1]))
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5, context=ctx) as response:
                if 200 <= response.status < 300:
                    response.read()
                    return
                last = str(response.status)
        except OSError as exc:
            last = repr(exc)
        time.sleep(0.05)
    raise RuntimeError(f"{url} never answered 2xx (last: {last})")


@dataclass
class Server:
    """A started server process: ``name`` (``gateway``/``nginx``) and its ``Popen``."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stats(self) -> CpuMem:
        return read_cpu_mem(self.proc.pid)


class Processes:
    """Starts servers and guarantees they are stopped (reverse order) when the ``with`` block ends."""

    def __init__(self) -> None:
        self._started: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Processes:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop_all()

    def stop_all(self) -> None:
        while self._started:
            self._stop(self._started.pop())

    def stop(self, server: Server) -> None:
        if server.proc in self._started:
            self._started.remove(server.proc)
        self._stop(server.proc)

    @staticmethod
    def _stop(proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is not None:
            return
        is_nginx = str(proc.args[0]).endswith("nginx")  # type: ignore[index]
        proc.send_signal(signal.SIGQUIT if is_nginx else signal.SIGTERM)  # graceful: nginx QUIT, gateway TERM
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    # -- nginx ---------------------------------------------------------------------------------------------

    def nginx(self, prefix: Path, conf: str, port: int) -> Server:
        """Write ``conf`` under ``prefix`` and run nginx in the foreground (``daemon off``)."""
        prefix.mkdir(parents=True, exist_ok=True)
        path = prefix / "nginx.conf"
        path.write_text(("user root;\n" if os.geteuid() == 0 else "") + conf)
        argv = [nginx_binary(), "-p", str(prefix), "-c", str(path), "-g", "daemon off;"]
        return self.spawn("nginx", argv, port, prefix / "stderr.log")

    # -- the floor -----------------------------------------------------------------------------------------

    def floor(self, args: list[str], port: int, log: Path) -> Server:
        """Run ``python -m benchmarks.floor PORT ...`` (``benchmarks/floor.py``); ready when its port accepts."""
        return self.spawn("the floor", [sys.executable, "-m", "benchmarks.floor", str(port), *args], port, log)

    def spawn(self, what: str, argv: list[str], port: int, log: Path) -> Server:
        """Start ``argv`` (stderr to ``log``) and wait until ``port`` accepts; the log is in the error otherwise."""
        stderr = open(log, "wb")  # noqa: SIM115 - handed to the child, closed below
        try:
            proc = subprocess.Popen(argv, cwd=str(_REPO), stdout=subprocess.DEVNULL, stderr=stderr)
        finally:
            stderr.close()
        self._started.append(proc)
        try:
            wait_port(port, proc)
        except RuntimeError:
            raise RuntimeError(f"{what} did not start: {log.read_text()}") from None
        return Server(what.removeprefix("the "), proc, port)

    # -- gateway -------------------------------------------------------------------------------------------

    def gateway(
        self,
        prefix: Path,
        env_extra: dict[str, str],
        port: int,
        source: Path | None = None,
        timeout: float = 30.0,
        python_args: Sequence[str] = (),
    ) -> Server:
        """Run ``python -m gateway start`` with ``KONG_*`` overrides; ready when it prints ``Gateway started``.

        ``source``: a directory holding another ``gateway`` package (an older copy of the tree) to run instead of
        this checkout's, for before/after comparisons (``benchmarks.compare``); ``-m`` imports from the working
        directory first. ``python_args``: interpreter arguments before ``-m gateway``, e.g. ``-m cProfile -o FILE``
        (``benchmarks.profile --cprofile``).
        """
        env = {k: v for k, v in os.environ.items() if not k.startswith("KONG_")}
        env.update(env_extra)
        proc = subprocess.Popen(
            [sys.executable, *python_args, "-m", "gateway", "start", "-p", str(prefix)],
            env=env,
            cwd=str(source or _REPO),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self._started.append(proc)
        lines: queue.Queue[bytes | None] = queue.Queue()

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:  # keep reading so the pipe never fills and blocks the gateway
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        output: list[bytes] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise RuntimeError(f"gateway did not start in {timeout}s: {b''.join(output).decode()}") from None
            if line is None:
                raise RuntimeError(f"gateway exited ({proc.wait()}): {b''.join(output).decode()}")
            output.append(line)
            if b"Gateway started" in line:
                return Server("gateway", proc, port)
