"""``Database``: the store object of one process (SQLite- or memory-backed), see ``interface.py``.

Concurrency model: one re-entrant lock guards the backend, so direct synchronous calls (tests, the CLI,
the Admin API through ``run``) are safe from any thread; ``run`` executes callables on one dedicated
worker thread, so SQLite never blocks the event loop and writes are serialised in submission order.

Transactions: ``transaction()`` is re-entrant; the outermost one begins, commits or rolls back. A transaction
that wrote anything is first ``verify``-ed by the backend (``StoreUnavailable`` rolls it back: the SQLite file
was removed or replaced under the process). A committed transaction that wrote anything bumps ``version``
(persisted in the backend's meta data, so a reopened SQLite file continues its numbering) and then calls every
subscriber with the new version, on the writing thread, after the lock is released.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

from gateway.entities import SCHEMAS
from gateway.entities import targets as targets_entity
from gateway.entities.values import is_uuid
from gateway.store.backend import Backend, Row
from gateway.store.dao import DAO
from gateway.store.entity_daos import make_dao

__all__ = ["Database"]

log = logging.getLogger("gateway.store")

T = TypeVar("T")


class Database:
    """The store: DAOs per entity, transactions, versions, subscribers, export and declarative swaps."""

    def __init__(self, backend: Backend, kind: str) -> None:
        self.backend = backend
        self.kind = kind
        """``sqlite``, ``postgres`` or ``off``."""
        self.lock = threading.RLock()
        self._depth = 0
        self._dirty = False
        self._subscribers: list[Callable[[int], None]] = []
        self._executor: ThreadPoolExecutor | None = None
        self._daos: dict[str, DAO] = {name: make_dao(self, schema) for name, schema in SCHEMAS.items()}
        self._children: dict[str, list[tuple[str, str, str | None]]] = {name: [] for name in SCHEMAS}
        for name, schema in SCHEMAS.items():
            for fname, f in schema.foreign_fields:
                if f.reference in self._children:
                    self._children[f.reference].append((name, fname, f.on_delete))
        #: a ``pg_watch.ChangeWatcher`` when other nodes share the store (started by ``open_store``), else None
        self.watcher: Any = None
        #: this process among the nodes sharing the store: its own broadcasts come back and are skipped
        self.node_id = str(uuid.uuid4())
        self._event_handlers: list[Callable[[str, dict[str, Any]], None]] = []
        stored = backend.get_meta("version")
        self.version: int = int(stored) if stored else 0

    # ------------------------------------------------------------------ DAOs
    def dao(self, entity: str) -> DAO:
        """The DAO of ``entity`` (``services``, ``certificates`` ...); ``KeyError`` when unknown."""
        return self._daos[entity]

    def dao_internal(self, entity: str) -> DAO:
        return self._daos[entity]

    def children(self, entity: str) -> list[tuple[str, str, str | None]]:
        """``(child entity, foreign key field, on_delete)`` for every field referencing ``entity``."""
        return self._children[entity]

    @staticmethod
    def new_id() -> str:
        return str(uuid.uuid4())

    # ------------------------------------------------------------------ transactions
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Join or open the write transaction; see the module docstring."""
        notify: int | None = None
        with self.lock:
            outer = self._depth == 0
            if outer:
                self.backend.begin()
                self._dirty = False
            self._depth += 1
            try:
                yield
            except BaseException:
                self._depth -= 1
                if outer:
                    self.backend.rollback()
                    self._dirty = False
                raise
            self._depth -= 1
            if outer:
                if self._dirty:
                    try:
                        # the stored number, not only ours: another node sharing the store may have moved it on
                        # (read inside the write transaction, whose lock orders the writers of every node)
                        new_version = max(self.version, int(self.backend.get_meta("version") or 0)) + 1
                        self.backend.verify()
                        self.backend.set_meta("version", str(new_version))
                        self.backend.publish(new_version)
                        self.backend.commit()
                    except BaseException:
                        self.backend.rollback()
                        raise
                    self.version = new_version
                    notify = new_version
                else:
                    self.backend.commit()
                self._dirty = False
        if notify is not None:
            self._notify(notify)

    def _notify(self, version: int) -> None:
        for callback in list(self._subscribers):
            try:
                callback(version)
            except Exception:
                log.exception("store subscriber failed for version %d", version)

    # ------------------------------------------------------------------ events between nodes
    def broadcast(self, event: str, data: Mapping[str, Any]) -> None:
        """Tell every other node sharing the store (Kong's ``cluster_events:broadcast``); nothing with a store of
        this process only. ``StoreUnavailable`` when the database cannot take it."""
        payload = json.dumps({"node": self.node_id, "event": event, "data": dict(data)}, separators=(",", ":"))
        with self.lock:
            self.backend.broadcast(payload)

    def on_event(self, callback: Callable[[str, dict[str, Any]], None]) -> None:
        """Call ``callback(event, data)`` for each event another node broadcast (from the watcher's thread)."""
        self._event_handlers.append(callback)

    def receive(self, payload: str) -> None:
        """An event heard by the watcher: handed to ``on_event`` callbacks unless it is this node's own."""
        try:
            message = json.loads(payload)
            node, event, data = message["node"], message["event"], message["data"]
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed event from another node: %.200s", payload)
            return
        if node == self.node_id:
            return
        for callback in list(self._event_handlers):
            try:
                callback(str(event), data)
            except Exception:
                log.exception("event handler failed for %s", event)

    def observe(self, version: int) -> bool:
        """Another node committed ``version`` (the change watcher saw it): adopt it and tell the subscribers, as
        after a commit of ours. False, and nothing said, when ``version`` is not newer than ours."""
        with self.lock:
            if version <= self.version:
                return False
            self.version = version
        self._notify(version)
        return True

    def put(self, entity: str, row: Row, columns: Mapping[str, str | None]) -> None:
        """Write a row inside the current transaction (DAOs only)."""
        assert self._depth > 0, "writes happen inside transaction()"
        self._dirty = True
        self.backend.put(entity, row, columns)

    def remove(self, entity: str, id: str) -> None:
        assert self._depth > 0, "writes happen inside transaction()"
        self._dirty = True
        self.backend.delete(entity, id)

    def clear(self, entity: str) -> None:
        assert self._depth > 0, "writes happen inside transaction()"
        self._dirty = True
        self.backend.clear(entity)

    # ------------------------------------------------------------------ interface
    def subscribe(self, callback: Callable[[int], None]) -> None:
        """Call ``callback(version)`` after every committed change (from the writing thread)."""
        self._subscribers.append(callback)

    def export(self) -> dict[str, list[Row]]:
        """Every row of every entity in dependency order; certificates carry their sorted ``snis``."""
        with self.lock, self.backend.reading():
            return {name: dao.all() for name, dao in self._daos.items()}

    def ping(self) -> None:
        """Raise ``StoreUnavailable`` when the store cannot answer now (a database server down)."""
        with self.lock:
            self.backend.ping()

    def replace_all(self, declarative: Mapping[str, Any]) -> None:
        """Validate a whole declarative config and swap it in, in one transaction, or raise and change nothing."""
        from gateway.store.declarative import load

        rows = load(declarative)
        self.load_rows(rows)

    def load_rows(self, rows: Mapping[str, list[Row]]) -> None:
        """Replace every table with already validated, complete rows (the output of ``declarative.load``)."""
        from gateway.store.backend import index_columns

        with self.transaction():
            for name in reversed(list(SCHEMAS)):
                self.clear(name)
            for name, dao in self._daos.items():
                for row in rows.get(name, []):
                    self.put(name, row, index_columns(dao.schema, row, dao._cache_key(row)))

    def select_target(self, upstream: str, key: str) -> Row | None:
        """A target of ``upstream`` (id or name) by its id or by its ``host:port`` (default port 8000)."""
        with self.lock:
            up = self._daos["upstreams"]._lookup(upstream)
            if up is None:
                return None
            if is_uuid(key):
                row = self.backend.get("targets", key)
                if row is not None and row["upstream"]["id"] == up["id"]:
                    return row
            formatted, _ = targets_entity.format_target(key)
            for row in self.backend.scan("targets", where={"fk:upstream": up["id"]}):
                if row["target"] in (key, formatted):
                    return row
            return None

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the store's single worker thread and await its result."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gateway-store")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args))

    def close(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        with self.lock:
            self.backend.close()
