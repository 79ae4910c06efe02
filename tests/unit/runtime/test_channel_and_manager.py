"""The worker channel's framing, ``worker_count``, and the snapshot manager's ``wait_built`` / ``on_built`` hooks."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable
from typing import Any

import pytest

from gateway.observability.errorlog import ErrorLog
from gateway.runtime.building import worker_count
from gateway.runtime.channel import Channel
from gateway.runtime.manager import SnapshotManager
from gateway.settings import load_settings


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


def test_worker_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KONG_WORKER_PROCESSES", raising=False)
    assert worker_count(load_settings(None, overrides={"worker_processes": "3"})) == 3
    cores = os.cpu_count() or 1
    assert worker_count(load_settings(None, overrides={"worker_processes": "auto"})) == cores
    assert worker_count(load_settings(None)) == cores  # Kong's default: auto


class _Store:
    def __init__(self) -> None:
        self.version = 0
        self.rows: dict[str, list[dict[str, Any]]] = {"services": []}
        self._subscribers: list[Callable[[int], None]] = []

    def export(self) -> dict[str, list[dict[str, Any]]]:
        return {name: list(rows) for name, rows in self.rows.items()}

    def subscribe(self, callback: Callable[[int], None]) -> None:
        self._subscribers.append(callback)

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    def write(self, name: str) -> None:
        self.rows["services"].append({"name": name})
        self.version += 1
        for callback in self._subscribers:
            callback(self.version)


class _Target:
    snapshot: Any = None


async def test_wait_built_returns_once_the_version_is_live_and_publishes_it() -> None:
    store, target = _Store(), _Target()
    published: list[tuple[int, Any]] = []
    manager = SnapshotManager(
        store,
        load_settings(None),
        target,
        ErrorLog(None, "error"),
        lambda config, settings: [row["name"] for row in config["services"]],
        on_built=lambda version, config: published.append((version, config)),
    )
    manager.attach(asyncio.get_running_loop())
    await store.run(store.write, "a")
    async with asyncio.timeout(5):
        await manager.wait_built(store.version)
    assert target.snapshot == ["a"]
    assert published[-1] == (1, {"services": [{"name": "a"}]})
    async with asyncio.timeout(1):
        await manager.wait_built(1)  # already live: returns at once
