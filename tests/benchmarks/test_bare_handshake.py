"""``benchmarks.bare_handshake``: full handshakes over memory BIOs, each checked by the client, timed on the server."""

from __future__ import annotations

import re
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
