"""``benchmarks.profile``'s per-request table from a real cProfile run (the ``--cprofile`` mode's arithmetic)."""

from __future__ import annotations

import cProfile
import pstats

from benchmarks.profile import per_request


def _once_per_request(n: int) -> int:
    return _twice_per_request(n) + _twice_per_request(n + 1)


def _twice_per_request(n: int) -> int:
    return n * 2


def _start_up() -> int:
    return 1


def test_per_request_counts_calls_per_request_and_leaves_out_rare_functions() -> None:
    requests = 500
    profiler = cProfile.Profile()
    profiler.enable()
    _start_up()
    for n in range(requests):
        _once_per_request(n)
    profiler.disable()

    table = per_request(pstats.Stats(profiler), requests)

    lines = table.splitlines()
    assert lines[0].startswith("500 requests; ")
    rows = {line.split()[-2]: line.split() for line in lines[3:]}
    assert rows["_once_per_request"][0] == "1.00"
    assert rows["_twice_per_request"][0] == "2.00"
    assert float(rows["_once_per_request"][2]) >= float(rows["_once_per_request"][1])  # cumulative >= own
    assert "_start_up" not in rows  # once in 500 requests: start-up, not the request path
