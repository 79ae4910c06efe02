"""Other nodes' writes reach this one: a thread that listens on its own PostgreSQL connection.

Theory of operation:
- Every write transaction sends ``NOTIFY gateway_config, '<version>'`` (``PostgresBackend.publish``); PostgreSQL
  delivers it to every listening connection when, and only when, the transaction commits.
- The watcher ``LISTEN``s and, on a notification or every ``db_update_frequency`` seconds (Kong's setting: the
  fallback when a notification is lost, e.g. across a proxy that drops them), reads the stored version. A version
  newer than the node's own goes to ``Database.observe``, which calls the store's subscribers as after a local
  commit: the runtime rebuilds its snapshot from the database exactly as it does after an Admin API write.
- The connection failing (the server down, restarted, a network cut) is said once at ``error``; the watcher then
  reconnects every ``RETRY`` seconds, and once back it says so at ``notice`` and reads the version at once, so
  every change it missed is caught up in one rebuild (a rebuild reads the whole configuration, not a change log).
- Events that are not stored (health forced through the Admin API: Kong's cluster events) come on a second channel
  and go to ``events`` (``Database.receive``) as they arrive; one sent while this node was disconnected is lost, as
  a health state is only ever a moment's.
- The thread waits in slices of ``SLICE`` seconds, so ``stop()`` returns within one slice.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg

from gateway.store.backend import StoreUnavailable
from gateway.store.postgres import CHANNEL, EVENTS, PgParams, connect

__all__ = ["ChangeWatcher"]

SLICE = 0.25
RETRY = 1.0

Say = Callable[[str, str], None]
"""``say(level, message)``: the error log's line (``error``, ``notice``)."""


class ChangeWatcher:
    """Feeds other nodes' versions to ``observe``; see the module docstring."""

    def __init__(
        self,
        params: PgParams,
        observe: Callable[[int], bool],
        every: float,
        say: Say | None = None,
        events: Callable[[str], None] | None = None,
    ) -> None:
        self.params = params
        self.observe = observe
        self.events = events
        self.every = every
        self.say: Say = say or (lambda level, message: None)
        self.reachable = True
        self.notified = 0
        """Notifications received (tests tell LISTEN/NOTIFY from the polling fallback with it)."""
        self.listening = threading.Event()
        """Set while the watcher's connection listens (cleared when it is lost): from then on no commit is missed."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="gateway-pg-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)

    # ------------------------------------------------------------------ the thread
    def _main(self) -> None:
        while not self._stop.is_set():
            try:
                conn = connect(self.params)
            except StoreUnavailable as exc:
                self._lost(str(exc))
                self._stop.wait(RETRY)
                continue
            try:
                self._listen(conn)
            except psycopg.Error as exc:
                self._lost(f"postgres {self.params.describe()}: {' '.join(str(exc).split())}")
            finally:
                conn.close()
            self._stop.wait(RETRY)

    def _listen(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(f"LISTEN {CHANNEL}".encode())
        if self.events is not None:
            conn.execute(f"LISTEN {EVENTS}".encode())
        if not self.reachable:
            self.reachable = True
            self.say("notice", f"[store] database {self.params.describe()} reachable again, catching up")
        self._check(conn)
        self.listening.set()
        next_poll = time.monotonic() + self.every
        while not self._stop.is_set():
            heard = False
            for note in conn.notifies(timeout=SLICE, stop_after=1):
                if note.channel == EVENTS and self.events is not None:
                    self.events(note.payload)
                    continue
                heard = True
                self.notified += 1
            if heard or time.monotonic() >= next_poll:
                self._check(conn)
                next_poll = time.monotonic() + self.every

    def _check(self, conn: psycopg.Connection[Any]) -> None:
        found = conn.execute(b"SELECT value FROM schema_meta WHERE key = 'version'").fetchone()
        if found is not None:
            self.observe(int(found[0]))

    def _lost(self, reason: str) -> None:
        self.listening.clear()
        if self.reachable:
            self.reachable = False
            self.say("error", f"[store] lost the database, serving the last configuration: {reason}")
