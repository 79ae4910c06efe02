"""Keeps the proxy's snapshot in step with the store.

Theory of operation:
- The store calls ``on_store_change(version)`` after every commit, from its worker thread.
- That hops onto the event loop (``call_soon_threadsafe``) and schedules one rebuild. Changes that arrive
  while a rebuild runs only mark the snapshot dirty; one more rebuild follows, so a burst of Admin API writes
  costs at most two builds, and the last write is always reflected.
- A rebuild exports the store and compiles a new ``Snapshot`` on the store's thread (the export needs it,
  and the loop stays free for traffic), then swaps ``proxy_state.snapshot`` in one assignment. Requests in
  flight keep the snapshot they started with; nothing is dropped.
- A failed build (a bug, or a certificate file that vanished) keeps the previous snapshot and logs at
  ``error``: the traffic flow never sees a half-built configuration.
- ``prepare(snapshot)``, when given, runs on the loop between the build and the swap: the health registry attaches
  the long-lived target health to the new balancers there (and resolves their name targets), so the first request
  on a new snapshot already sees the health its predecessor knew.
- ``on_built(version, config)``, when given, runs on the loop right after each swap with the export the snapshot
  was built from: the worker pool pushes it to the worker processes there.
- ``wait_built(version)`` returns once a build that started at ``version`` or later has finished (swapped, or
  failed and logged): the Admin API awaits it so that a write is live when its answer leaves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, Protocol, TypeVar

from gateway.observability.errorlog import ErrorLog
from gateway.settings import Settings
from gateway.store.interface import Config, Store

__all__ = ["SnapshotManager"]

#: what the builder makes (``gateway.runtime.snapshot.Snapshot`` in the gateway; anything in a unit test)
S = TypeVar("S")


class _HasSnapshot(Protocol[S]):
    """Where the live snapshot is swapped in (``gateway.proxy.state.ProxyState``)."""

    snapshot: S


class SnapshotManager(Generic[S]):
    """Rebuilds and swaps the proxy snapshot whenever the store changes."""

    def __init__(
        self,
        db: Store,
        settings: Settings,
        target: _HasSnapshot[S],
        error_log: ErrorLog,
        build: Callable[[Config, Settings], S],
        prepare: Callable[[S], Awaitable[None]] | None = None,
        on_built: Callable[[int, Config], None] | None = None,
    ) -> None:
        self._db = db
        self._settings = settings
        self._target = target
        self._log = error_log
        self._build = build
        #: awaited on the loop with each new snapshot before it goes live (the health registry attaches health)
        self._prepare = prepare
        self.on_built = on_built
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        #: the newest version a build was attempted for (swapped or failed)
        self.done_version = -1
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running: asyncio.Task[None] | None = None
        self._dirty = False
        self._idle = asyncio.Event()
        self._idle.set()
        self.built_version = -1
        self.builds = 0

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._db.subscribe(self.on_store_change)

    def on_store_change(self, version: int) -> None:
        """Called from the store's thread after a commit."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(self.request_rebuild)

    def request_rebuild(self) -> None:
        if self._running is not None and not self._running.done():
            self._dirty = True
            return
        self._idle.clear()
        self._running = asyncio.get_running_loop().create_task(self._rebuild_loop())

    def set_settings(self, settings: Settings) -> None:
        """Settings that feed the snapshot (e.g. certificate files re-read on SIGHUP)."""
        self._settings = settings

    async def _rebuild_loop(self) -> None:
        try:
            while True:
                self._dirty = False
                version = self._db.version
                try:
                    config, snapshot = await self._db.run(self._export_and_build)
                except Exception as exc:  # keep serving the previous snapshot
                    self._log.error(f"[runtime] could not rebuild the configuration: {exc!r}")
                else:
                    if self._prepare is not None:
                        try:
                            await self._prepare(snapshot)
                        except Exception as exc:  # health wiring failed: serve the new config anyway
                            self._log.error(f"[runtime] could not prepare the configuration: {exc!r}")
                    self._target.snapshot = snapshot
                    self.built_version = version
                    self.builds += 1
                    if self._log.debug_enabled:
                        self._log.debug(f"[runtime] configuration version {version} is live")
                    if self.on_built is not None:
                        try:
                            self.on_built(version, config)
                        except Exception as exc:
                            self._log.error(f"[runtime] could not publish the configuration: {exc!r}")
                self._finished(version)
                if not self._dirty:
                    break
        finally:
            self._idle.set()

    def _export_and_build(self) -> tuple[Config, S]:
        config = self._db.export()
        return config, self._build(config, self._settings)

    def _finished(self, version: int) -> None:
        self.done_version = max(self.done_version, version)
        pending = []
        for wanted, future in self._waiters:
            if wanted <= self.done_version:
                if not future.done():
                    future.set_result(None)
            else:
                pending.append((wanted, future))
        self._waiters = pending

    async def wait_built(self, version: int) -> None:
        """Until a build of ``version`` (or newer) has finished. Unbounded: callers put a timeout around it."""
        if version <= max(self.done_version, self.built_version):
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((version, future))
        if self._running is None or self._running.done():
            self.request_rebuild()  # the store's notice may still be on its way: make sure a build follows
        await future

    async def settled(self) -> None:
        """Wait until no rebuild is pending (tests, and the Admin API's read-your-writes if wanted)."""
        await self._idle.wait()
