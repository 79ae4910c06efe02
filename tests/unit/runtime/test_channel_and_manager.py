"""The worker channel's framing, ``worker_count``, and the snapshot manager's ``wait_built`` / ``on_built`` hooks."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest

from gateway.observability.errorlog import ErrorLog
from gateway.runtime.building import worker_count
from gateway.runtime.channel import Channel, int_field
from gateway.runtime.manager import SnapshotManager
from gateway.settings import load_settings
from gateway.store import open_database
from gateway.store.interface import Config


async def test_channel_round_trip_and_eof() -> None:
    left, right = socket.socketpair()
    a, b = await Channel.open(left), await Channel.open(right)
    big = {"rows": ["x" * 1000] * 200}
    a.send("config", seq=1, config=big)
    a.send("stop")
    assert await b.receive() == {"type": "config", "seq": 1, "config": big}
    assert await b.receive() == {"type": "stop"}
    a.close()
    assert await b.receive() is None
    b.close()


def test_int_field_takes_integers_only() -> None:
    message: dict[str, object] = {"type": "ack", "seq": 3, "pid": "12", "flag": True, "none": None}
    assert int_field(message, "seq") == 3
    assert [int_field(message, name) for name in ("pid", "flag", "none", "absent")] == [None, None, None, None]


def test_worker_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KONG_WORKER_PROCESSES", raising=False)
    assert worker_count(load_settings(None, overrides={"worker_processes": "3"})) == 3
    cores = os.cpu_count() or 1
    assert worker_count(load_settings(None, overrides={"worker_processes": "auto"})) == cores
    assert worker_count(load_settings(None)) == cores  # Kong's default: auto


class _Target:
    """Where the manager swaps the live snapshot in (``ProxyState`` in the gateway)."""

    snapshot: list[str] | None = None


async def test_wait_built_returns_once_the_version_is_live_and_publishes_it(tmp_path: Path) -> None:
    store, target = open_database("sqlite", str(tmp_path / "gateway.db")), _Target()
    published: list[tuple[int, Config]] = []
    manager = SnapshotManager(
        store,
        load_settings(None),
        target,
        ErrorLog(None, "error"),
        lambda config, settings: [str(row["name"]) for row in config["services"]],
        on_built=lambda version, config: published.append((version, config)),
    )
    try:
        manager.attach(asyncio.get_running_loop())
        await store.run(store.dao("services").insert, {"name": "a", "host": "a.test"})
        assert store.version == 1
        async with asyncio.timeout(5):
            await manager.wait_built(store.version)
        assert target.snapshot == ["a"]
        version, config = published[-1]
        assert version == 1 and [row["name"] for row in config["services"]] == ["a"]
        async with asyncio.timeout(1):
            await manager.wait_built(1)  # already live: returns at once
    finally:
        store.close()
