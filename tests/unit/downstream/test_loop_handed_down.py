"""An accepted ``ssl`` connection, handshake to close, never asks ``asyncio`` for the running loop: its listener
hands the loop down (``TlsListener.loop`` -> ``FirstBytes`` -> ``TlsProtocol``; ``ProxyState.protocol_factory`` ->
``HttpConnection``). On CPython 3.11 each ``asyncio.get_running_loop()`` is a ``getpid`` system call; three per
connection were the gateway's only system calls beyond nginx's under S5 (``strace -c``: 10 ``getpid`` per
connection against nginx's 7, OpenSSL's random generator making the 7).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from benchmarks.inprocess_handshake import Harness
from benchmarks.pki import make_pki
from gateway.downstream.http1 import HttpToolsProtocol
from gateway.settings import Listener


async def test_a_tls_connection_asks_asyncio_for_no_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    harness = Harness(tmp_path, make_pki(tmp_path / "pki", "ecdsa"))
    try:
        await harness.warm_up()  # the first request opens the pooled upstream (a task: the loop is asked there)
        asked: list[int] = []
        real = asyncio.get_running_loop

        def counting() -> asyncio.AbstractEventLoop:
            asked.append(1)
            return real()

        monkeypatch.setattr(asyncio, "get_running_loop", counting)
        await harness.serve(3)  # raises unless each was answered, closed and released
        assert asked == []
        # the stand-in counts: a connection made without its loop asks once
        HttpToolsProtocol(harness.state, Listener("127.0.0.1", 8443))
        assert asked == [1]
    finally:
        harness.close()
