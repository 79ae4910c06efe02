"""``benchmarks.inprocess``: the plain proxy path driven in memory, each request answered by the pooled upstream."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from benchmarks.inprocess import Harness, main


async def test_requests_reach_the_pooled_upstream_and_come_back(tmp_path: Path) -> None:
    harness = Harness(str(tmp_path))
    await harness.warm_up()
    up = harness.upstream
    await harness.serve(50)
    assert harness.upstream_requests == 51  # the warm-up and 50 more, all on the one pooled connection
    assert harness.upstream is up
    harness.state.close()


async def test_the_loop_turns_so_that_tick_callbacks_do_not_pile_up(tmp_path: Path) -> None:
    # each request's held writes schedule tick-end callbacks; served without the loop turning, uvloop kept them
    # queued (two objects per request), and the collector's passes over them went into the figure
    harness = Harness(str(tmp_path))
    await harness.warm_up()
    await harness.serve(200)
    gc.collect()
    before = len(gc.get_objects())
    await harness.serve(2000)
    gc.collect()
    assert len(gc.get_objects()) - before < 300
    harness.state.close()


async def test_a_request_that_does_not_reach_the_upstream_is_an_error(tmp_path: Path) -> None:
    harness = Harness(str(tmp_path))
    await harness.warm_up()
    assert harness.upstream is not None
    harness.upstream.closed = True  # the pool must not hand it out again: the next request opens a connection
    with pytest.raises(RuntimeError, match="did not reach the pooled upstream"):
        await harness.serve(3)
    harness.state.close()


def test_main_prints_cpu_per_request(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--requests", "200", "--rounds", "2"])
    assert "200 requests x 2 rounds: CPU per request best " in capsys.readouterr().out
