"""``benchmarks.bare_handshake``: full handshakes over memory BIOs, each checked by the client, timed on the server."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from benchmarks import bare_handshake
from benchmarks.bare_handshake import BareHandshakes, main
from benchmarks.pki import make_pki


@pytest.mark.parametrize("key", ["rsa", "ecdsa"])
def test_each_connection_completes_and_only_the_server_is_timed(tmp_path: Path, key: str) -> None:
    bench = BareHandshakes(make_pki(tmp_path, key))
    bench.connection()  # raises unless the client read the response and the close_notify
    first = bench.cpu_ns
    bench.connection()
    assert 0 < first < bench.cpu_ns


def test_a_wrong_response_fails_the_check(tmp_path: Path) -> None:
    bench = BareHandshakes(make_pki(tmp_path, "ecdsa"))
    bench.response = bare_handshake.RESPONSE.replace(b"200 OK", b"502 Bad Gateway")
    with pytest.raises(RuntimeError, match="the client read"):
        bench.connection()


def test_main_prints_a_figure_per_churn_level(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--key", "ecdsa", "--connections", "10", "--rounds", "2", "--churn", "0,1000"])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    for line, churn in zip(lines, ("0", "1,000"), strict=True):
        found = re.fullmatch(
            rf"ecdsa, churn {churn}: server CPU per connection best ([\d.]+) us, median ([\d.]+) us "
            r"\(10 connections x 2 rounds\)",
            line,
        )
        assert found is not None, line
        assert 0 < float(found[1]) <= float(found[2])


def test_the_extra_work_runs_inside_the_timed_region(tmp_path: Path) -> None:
    bench = BareHandshakes(make_pki(tmp_path, "ecdsa"))
    bench.connection()
    without = bench.cpu_ns
    calls: list[int] = []

    def busy() -> None:  # about 20 ms of CPU, far above a handshake's
        calls.append(1)
        deadline = time.process_time_ns() + 20_000_000
        while time.process_time_ns() < deadline:
            pass

    bench.extra = busy
    bench.cpu_ns = 0
    bench.connection()
    assert calls == [1]
    assert bench.cpu_ns >= 20_000_000 > without


def test_main_with_the_gateway_request_prints_it_with_and_without_handshakes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    main(["--key", "ecdsa", "--connections", "10", "--rounds", "2", "--churn", "0", "--gateway-request"])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    with_request = re.fullmatch(
        r"ecdsa, churn 0, with the gateway's request: server CPU per connection best ([\d.]+) us, "
        r"median ([\d.]+) us \(10 connections x 2 rounds\)",
        lines[0],
    )
    alone = re.fullmatch(
        r"the gateway's request alone, one after the other: best ([\d.]+) us, median ([\d.]+) us", lines[1]
    )
    assert with_request is not None, lines[0]
    assert alone is not None, lines[1]
    assert 0 < float(alone[1]) <= float(alone[2]) < float(with_request[1])
