"""``benchmarks.inprocess_handshake``: a full TLS handshake per connection, driven in memory, checked by the client."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from benchmarks.inprocess_handshake import RESPONSE, FloorServer, Harness, main
from benchmarks.pki import make_pki


async def test_each_connection_is_served_and_released_over_the_one_pooled_upstream(tmp_path: Path) -> None:
    harness = Harness(tmp_path, make_pki(tmp_path / "pki", "ecdsa"))
    try:
        await harness.warm_up()
        upstream = harness.upstream
        await harness.serve(20)  # raises unless every client decrypted its 200 and close_notify
        assert harness.upstream is upstream and harness.upstreams_opened == 1  # pooled, as in S5
        assert harness.open_connections() == 0  # every connection_lost released its connection
        assert harness.state.connections_accepted == 21
        assert harness.cpu_ns > 0
    finally:
        harness.close()


async def test_a_wrong_response_fails_the_check(tmp_path: Path) -> None:
    harness = Harness(tmp_path, make_pki(tmp_path / "pki", "ecdsa"))
    try:
        await harness.warm_up()
        harness.response = RESPONSE.replace(b"200 OK", b"502 Bad Gateway")
        with pytest.raises(RuntimeError, match="unexpected response"):
            await harness.serve(3)
    finally:
        harness.close()


@pytest.mark.parametrize("key", ["rsa", "ecdsa"])
def test_main_prints_cpu_per_connection(key: str, capsys: pytest.CaptureFixture[str]) -> None:
    main(["--connections", "50", "--rounds", "1", "--key", key])
    out = capsys.readouterr().out
    found = re.search(
        rf"50 connections x 1 rounds \({key}\): CPU per connection best ([\d.]+) us, median ([\d.]+) us", out
    )
    assert found is not None, out
    assert float(found[1]) > 0 and float(found[2]) >= float(found[1])


async def test_the_floor_serves_the_same_client_and_is_timed(tmp_path: Path) -> None:
    harness = Harness(tmp_path, make_pki(tmp_path / "pki", "ecdsa"))
    try:
        floor = FloorServer(harness)
        floor.connection()  # raises unless the client decrypted the fixed response and the close_notify
        first = floor.cpu_ns
        figures = await floor.time(5, 2)
        assert first > 0 and len(figures) == 2 and all(figure > 0 for figure in figures)
    finally:
        harness.close()


def test_main_with_the_floor_prints_both(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--connections", "20", "--rounds", "2", "--key", "ecdsa", "--floor"])
    lines = capsys.readouterr().out.splitlines()
    figure = r"CPU per connection best ([\d.]+) us, median ([\d.]+) us"
    gateway = re.fullmatch(rf"20 connections x 2 rounds \(ecdsa\): {figure}", lines[0])
    floor = re.fullmatch(rf"the in-process floor, same traffic: {figure}", lines[1])
    assert gateway is not None and floor is not None, lines
    assert 0 < float(floor[1]) <= float(floor[2]) and 0 < float(gateway[1]) <= float(gateway[2])
