"""The in-memory backend, for ``database = off`` (DB-less, configured by a declarative file or POST /config).

Rows are kept as JSON strings, so a caller can never mutate stored state through a returned dict, exactly
as with SQLite. Unique index columns have a value -> id map; foreign-key columns are scanned (the
collections are small and reads of children are rare outside the Admin API). A transaction is an undo
log: every put/delete records the previous state, and ``rollback`` replays it backwards.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from gateway.store.backend import Row, dumps

__all__ = ["MemoryBackend"]

_Stored = tuple[str, dict[str, str | None]]  # (row JSON, index columns)


class MemoryBackend:
    """``Backend`` over dicts; see the module docstring."""

    def __init__(self, entities: list[str]) -> None:
        self._rows: dict[str, dict[str, _Stored]] = {e: {} for e in entities}
        self._unique: dict[tuple[str, str], dict[str, str]] = {}
        self._meta: dict[str, str] = {}
        self._undo: list[tuple[str, str, _Stored | None]] | None = None
        self._meta_undo: dict[str, str | None] = {}

    # ------------------------------------------------------------------ transactions
    def begin(self) -> None:
        self._undo = []
        self._meta_undo = {}

    def commit(self) -> None:
        self._undo = None
        self._meta_undo = {}

    def verify(self) -> None:
        """Nothing to check: this store is meant to be lost at exit."""

    def reading(self) -> AbstractContextManager[None]:
        """One process reads and writes under the database's lock: every read already sees one moment."""
        return nullcontext()

    def publish(self, version: int) -> None:
        """No other node shares this store."""

    def ping(self) -> None:
        """Always reachable: the store is in this process."""

    def broadcast(self, payload: str) -> None:
        """No other node shares this store."""

    def rollback(self) -> None:
        undo, self._undo = self._undo or [], None
        for entity, id, previous in reversed(undo):
            self._raw_remove(entity, id)
            if previous is not None:
                self._raw_set(entity, id, previous)
        for key, value in self._meta_undo.items():
            if value is None:
                self._meta.pop(key, None)
            else:
                self._meta[key] = value
        self._meta_undo = {}

    # ------------------------------------------------------------------ raw index maintenance
    def _raw_set(self, entity: str, id: str, stored: _Stored) -> None:
        self._rows[entity][id] = stored
        for column, value in stored[1].items():
            if value is not None and not column.startswith("fk:"):
                self._unique.setdefault((entity, column), {})[value] = id

    def _raw_remove(self, entity: str, id: str) -> None:
        stored = self._rows[entity].pop(id, None)
        if stored is None:
            return
        for column, value in stored[1].items():
            if value is not None and not column.startswith("fk:"):
                index = self._unique.get((entity, column), {})
                if index.get(value) == id:
                    del index[value]

    def _record(self, entity: str, id: str) -> None:
        if self._undo is not None:
            self._undo.append((entity, id, self._rows[entity].get(id)))

    # ------------------------------------------------------------------ Backend
    def get(self, entity: str, id: str) -> Row | None:
        stored = self._rows[entity].get(id)
        return json.loads(stored[0]) if stored is not None else None

    def find(self, entity: str, column: str, value: str) -> Row | None:
        id = self._unique.get((entity, column), {}).get(value)
        return self.get(entity, id) if id is not None else None

    def put(self, entity: str, row: Row, columns: Mapping[str, str | None]) -> None:
        id = row["id"]
        self._record(entity, id)
        self._raw_remove(entity, id)
        self._raw_set(entity, id, (dumps(row), dict(columns)))

    def delete(self, entity: str, id: str) -> None:
        if id in self._rows[entity]:
            self._record(entity, id)
            self._raw_remove(entity, id)

    def scan(
        self, entity: str, after: str | None = None, limit: int | None = None, where: Mapping[str, str] | None = None
    ) -> list[Row]:
        rows = self._rows[entity]
        out: list[Row] = []
        for id in sorted(rows):
            if after is not None and id <= after:
                continue
            stored = rows[id]
            if where and any(stored[1].get(c) != v for c, v in where.items()):
                continue
            out.append(json.loads(stored[0]))
            if limit is not None and len(out) >= limit:
                break
        return out

    def clear(self, entity: str) -> None:
        for id in list(self._rows[entity]):
            self.delete(entity, id)

    def get_meta(self, key: str) -> str | None:
        return self._meta.get(key)

    def set_meta(self, key: str, value: str) -> None:
        if self._undo is not None and key not in self._meta_undo:
            self._meta_undo[key] = self._meta.get(key)
        self._meta[key] = value

    def close(self) -> None:
        """Nothing to release; the data lives as long as the process (DB-less semantics)."""

    def stats(self) -> dict[str, Any]:
        return {entity: len(rows) for entity, rows in self._rows.items()}
