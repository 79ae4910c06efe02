"""A debug-only memory probe for the soak's workers (``python -m benchmarks.soak --probe``); never used in production.

Why this shape. The question the soak asks is *whose* memory a worker's growing RSS is: Python objects, C
allocations (OpenSSL's among them: they all go through ``malloc``), or memory ``malloc`` holds free and has not
returned to the system. Only the worker itself can answer, and the gateway has no debug hook for it (nor should it:
Kong has none). So the soak puts this directory first on the gateway's ``PYTHONPATH``: Python imports
``sitecustomize`` at start-up in every process of the gateway (master, zygote), and this module registers an
``os.register_at_fork`` hook there, so every process *forked* from them - the workers, forked by the zygote - starts
one daemon thread that every ``GATEWAY_SOAK_PROBE_PERIOD`` seconds appends one JSON line to
``$GATEWAY_SOAK_PROBE_DIR/<pid>.jsonl``:

- ``objects``: ``len(gc.get_objects())``, the container objects the garbage collector tracks;
- ``blocks``: ``sys.getallocatedblocks()``, every live allocation of Python's object allocator;
- ``malloc_used`` / ``malloc_free`` / ``malloc_mmap``: glibc's ``mallinfo2()`` over all arenas - bytes handed out
  (``uordblks``), bytes free inside the heap (``fordblks``), bytes in ``mmap``-ed chunks (``hblkhd``);
- ``gc_collections``: per generation, the collections so far.

A file ``<pid>.trim`` asks for one intervention: ``gc.collect()`` then ``malloc_trim(0)``, with the RSS and
``mallinfo2`` read before and after each and the most common types of what the collection found (cyclic garbage),
answered by a line with ``"action": "trim"``. With
``GATEWAY_SOAK_PROBE_TRIM=1`` the probe calls ``malloc_trim(0)`` after every reading, and with
``GATEWAY_SOAK_PROBE_COLLECT=1`` a full ``gc.collect()`` (comparison curves: what RSS would be if ``malloc`` gave
free pages back at once, or if no garbage waited for the collector).

The probe costs its worker one thread (so one more ``malloc`` arena) and a walk of the tracked objects per reading
(a few milliseconds); its own allocations are a few kilobytes per reading, freed at once. A process forked without
``GATEWAY_SOAK_PROBE_DIR`` set is untouched.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import json
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

_FIELDS = ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in _FIELDS]


def _libc() -> Any:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    libc.mallinfo2.restype = _MallInfo2
    libc.malloc_trim.argtypes = [ctypes.c_size_t]
    return libc


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _malloc(libc: Any) -> dict[str, int]:
    info = libc.mallinfo2()
    return {"malloc_used": info.uordblks, "malloc_free": info.fordblks, "malloc_mmap": info.hblkhd}


def _reading(libc: Any) -> dict[str, Any]:
    return {
        "time": time.time(),
        "rss_kib": _status_kib("VmRSS"),
        "objects": len(gc.get_objects()),
        "blocks": sys.getallocatedblocks(),
        "gc_collections": [generation["collections"] for generation in gc.get_stats()],
        "gc_count": list(gc.get_count()),
        **_malloc(libc),
    }


def _trim(libc: Any) -> dict[str, Any]:
    before = {"rss_kib": _status_kib("VmRSS"), **_malloc(libc)}
    gc.set_debug(gc.DEBUG_SAVEALL)  # keep what the collection finds in gc.garbage, to name it
    try:
        collected = gc.collect()
        kinds = Counter(f"{type(obj).__module__}.{type(obj).__qualname__}" for obj in gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    gc.collect()  # now free it
    after_gc = {"rss_kib": _status_kib("VmRSS"), **_malloc(libc)}
    libc.malloc_trim(0)
    after_trim = {"rss_kib": _status_kib("VmRSS"), **_malloc(libc)}
    return {
        "action": "trim",
        "collected": collected,
        "garbage": kinds.most_common(12),
        "before": before,
        "after_gc": after_gc,
        "after_trim": after_trim,
    }


def _run(directory: Path, period: float, trim_always: bool, collect_always: bool) -> None:
    libc = _libc()
    pid = os.getpid()
    out = directory / f"{pid}.jsonl"
    request = directory / f"{pid}.trim"
    while True:
        record = _reading(libc)
        if collect_always:
            record["collected"] = gc.collect()
        if trim_always:
            libc.malloc_trim(0)
        if request.exists():
            request.unlink()
            record.update(_trim(libc))
        with out.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        time.sleep(period)


def _start_in_child() -> None:
    directory = os.environ.get("GATEWAY_SOAK_PROBE_DIR")
    if not directory:
        return
    period = float(os.environ.get("GATEWAY_SOAK_PROBE_PERIOD", "1"))
    trim_always = os.environ.get("GATEWAY_SOAK_PROBE_TRIM") == "1"
    collect_always = os.environ.get("GATEWAY_SOAK_PROBE_COLLECT") == "1"
    args = (Path(directory), period, trim_always, collect_always)
    threading.Thread(target=_run, args=args, name="soak-probe", daemon=True).start()


if os.environ.get("GATEWAY_SOAK_PROBE_DIR"):
    os.register_at_fork(after_in_child=_start_in_child)
