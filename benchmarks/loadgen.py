"""Load generators, each run bounded in time, and their output parsed into one ``LoadResult``.

- ``wrk`` (``--latency``): keepalive HTTP/HTTPS; with ``Connection: close`` a new connection per request. wrk
  cannot present a client certificate.
- ``ab -k -E chain+key.pem``: keepalive HTTPS with a client certificate chain (ApacheBench speaks HTTP/1.0 with
  ``Connection: keep-alive``; its percentiles are whole milliseconds).

Bounded by a count rather than a duration (the soak, ``benchmarks.soak``):

- ``run_wrk_requests``: wrk has no request-count flag; a Lua script counts responses in each thread and stops the
  thread (``wrk.thread:stop()``) once it has its share and drops a flag file, on which the caller interrupts wrk
  (SIGINT: wrk prints its summary); ``-d`` stays as the outer time bound.
- ``run_ab_connections``: ``ab -n N`` without ``-k``, one new TLS connection per request. ab creates a fresh
  ``SSL`` for every connection and never offers a saved session (no ``SSL_set_session``), so each connection is a
  full handshake whatever the server's tickets and session cache allow.

A run that saw any non-2xx answer or socket error is reported with ``errors > 0``; the caller decides whether that
fails the benchmark (it does: a proxy that answers errors fast is not fast).
"""

from __future__ import annotations

import re
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LoadResult", "run_ab", "run_ab_connections", "run_wrk", "run_wrk_requests"]

_UNITS_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}
_UNITS_B = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


@dataclass
class LoadResult:
    """One load run: what the client measured."""

    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    bytes_per_s: float
    errors: int
    raw: str

    @property
    def mb_per_s(self) -> float:
        return self.bytes_per_s / 1e6


def _duration_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        raise ValueError(f"unparsable duration {text!r}")
    return float(match.group(1)) * _UNITS_S[match.group(2)] * 1000.0


def parse_wrk(out: str) -> LoadResult:
    """Parse ``wrk --latency`` output (requests, duration, percentiles, transfer, errors)."""
    total = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m), ([\d.]+)([KMGT]?B) read", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    if not (total and rps and p50 and p99):
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    seconds = float(total.group(2)) * _UNITS_S[total.group(3)]
    read = float(total.group(4)) * _UNITS_B[total.group(5)]
    errors = 0
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if non2xx:
        errors += int(non2xx.group(1))
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if sock:
        errors += sum(int(g) for g in sock.groups())
    return LoadResult(
        requests=int(total.group(1)),
        seconds=seconds,
        rps=float(rps.group(1)),
        p50_ms=_duration_ms(p50.group(1)),
        p99_ms=_duration_ms(p99.group(1)),
        bytes_per_s=read / seconds if seconds else 0.0,
        errors=errors,
        raw=out,
    )


def run_wrk(url: str, duration: float, connections: int, headers: tuple[str, ...] = ()) -> LoadResult:
    """``wrk -t1 -c<connections> -d<duration>s --latency``; one thread leaves the other core to the server."""
    args = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency", "--timeout", "5s"]
    for header in headers:
        args += ["-H", header]
    args.append(url)
    proc = subprocess.run(args, capture_output=True, text=True, timeout=duration + 30)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr}{proc.stdout}")
    return parse_wrk(proc.stdout)


def parse_ab(out: str) -> LoadResult:
    """Parse ApacheBench output (complete/failed requests, non-2xx, req/s, percentiles in whole ms)."""
    complete = re.search(r"Complete requests:\s+(\d+)", out)
    taken = re.search(r"Time taken for tests:\s+([\d.]+) seconds", out)
    rps = re.search(r"Requests per second:\s+([\d.]+)", out)
    p50 = re.search(r"^\s+50%\s+(\d+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\d+)", out, re.M)
    transferred = re.search(r"Total transferred:\s+(\d+) bytes", out)
    if not (complete and taken and rps and p50 and p99 and transferred):
        raise RuntimeError(f"unexpected ab output:\n{out}")
    errors = 0
    for pattern in (r"Failed requests:\s+(\d+)", r"Non-2xx responses:\s+(\d+)"):
        match = re.search(pattern, out)
        if match:
            errors += int(match.group(1))
    seconds = float(taken.group(1))
    return LoadResult(
        requests=int(complete.group(1)),
        seconds=seconds,
        rps=float(rps.group(1)),
        p50_ms=float(p50.group(1)),
        p99_ms=float(p99.group(1)),
        bytes_per_s=int(transferred.group(1)) / seconds if seconds else 0.0,
        errors=errors,
        raw=out,
    )


def run_ab(url: str, duration: float, connections: int, client_pem: Path | None = None) -> LoadResult:
    """``ab -k -c<connections> -t<duration> [-E chain+key.pem]`` (``-n`` after ``-t`` lifts ab's 50k cap)."""
    args = ["ab", "-q", "-k", "-c", str(connections), "-t", str(max(1, round(duration))), "-n", "100000000"]
    if client_pem is not None:
        args += ["-E", str(client_pem)]
    args.append(url)
    proc = subprocess.run(args, capture_output=True, text=True, timeout=duration + 30)
    if proc.returncode != 0:
        raise RuntimeError(f"ab failed ({proc.returncode}): {proc.stderr}{proc.stdout}")
    return parse_ab(proc.stdout)


# Each wrk thread runs its own copy of the script: ``setup`` (in wrk's main state) numbers the threads, ``init``
# gets the share and the flag files' path (the arguments after ``--``). ``wrk.thread:stop()`` ends the thread's
# event loop, but wrk's main thread sleeps out ``-d`` before it joins the threads and prints its summary; the flag
# file tells the caller to cut that sleep short with SIGINT, which wrk handles by printing the summary so far.
_STOP_AFTER_LUA = """
local threads = 0
function setup(thread) thread:set("id", threads); threads = threads + 1 end
local share, done, flag = 0, 0, nil
function init(args) share = tonumber(args[1]); flag = args[2] end
function response(status, headers, body)
  done = done + 1
  if done == share then
    wrk.thread:stop()
    local file = io.open(flag .. "." .. tostring(id), "w")
    file:write("done")
    file:close()
  end
end
"""


def run_wrk_requests(url: str, requests: int, connections: int, threads: int = 1, timeout: float = 900.0) -> LoadResult:
    """``requests`` keepalive requests with wrk (``requests / threads`` per thread), bounded by ``timeout`` seconds.

    A run the time bound cut short returns fewer requests than asked: the caller compares.
    """
    share = -(-requests // threads)
    with tempfile.TemporaryDirectory(prefix="wrk-count-") as tmp:
        script = Path(tmp) / "stop_after.lua"
        script.write_text(_STOP_AFTER_LUA)
        flag = Path(tmp) / "done"
        args = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(timeout))}s", "--latency"]
        args += ["--timeout", "5s", "-s", str(script), url, "--", str(share), str(flag)]
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + timeout + 5
            while proc.poll() is None and time.monotonic() < deadline:
                if len(list(Path(tmp).glob("done.*"))) >= threads:
                    proc.send_signal(signal.SIGINT)  # every thread has its share: print the summary now
                    break
                time.sleep(0.02)
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {err}{out}")
    return parse_wrk(out)


def run_ab_connections(url: str, connections: int, concurrency: int, timeout: float = 900.0) -> LoadResult:
    """``ab -n <connections> -c <concurrency>`` without ``-k``: one new connection (over https, one full
    handshake) per request; ``-s`` bounds each socket wait, ``timeout`` the whole run."""
    args = ["ab", "-q", "-n", str(connections), "-c", str(concurrency), "-s", "10", url]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"ab failed ({proc.returncode}): {proc.stderr}{proc.stdout}")
    return parse_ab(proc.stdout)
