"""``benchmarks.inprocess_tls``: the real TLS stack on both sides, driven in memory, checked by the peers."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.inprocess_tls import Harness, main
from benchmarks.pki import make_pki


async def test_requests_cross_both_tls_hops_and_the_peers_check_them(tmp_path: Path) -> None:
    harness = Harness(tmp_path, make_pki(tmp_path / "pki", "ecdsa"))
    try:
        await harness.warm_up()
        assert harness.upstream is not None  # the connector's handshake ran against the in-memory upstream
        batch = harness.prepare(50)
        await harness.run(batch)
        assert len(batch.upstream) == 50  # one upstream write per request (keepalive, pooled)
        assert len(batch.downstream) == 50  # one downstream write per response
        harness.verify(batch)
    finally:
        harness.close()


async def test_verify_fails_when_a_response_is_missing(tmp_path: Path) -> None:
    harness = Harness(tmp_path, make_pki(tmp_path / "pki", "ecdsa"))
    try:
        await harness.warm_up()
        batch = harness.prepare(5)
        await harness.run(batch)
        batch.downstream.pop()  # the client would get four responses for five requests
        with pytest.raises(RuntimeError, match="did not receive 5 responses"):
            harness.verify(batch)
    finally:
        harness.close()


def test_main_prints_cpu_per_request(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--requests", "200", "--rounds", "2"])
    out = capsys.readouterr().out
    assert "200 requests x 2 rounds: CPU per request best " in out
