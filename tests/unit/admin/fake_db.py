"""A minimal in-memory store that follows ``gateway/store/interface.py`` (``Store``), for Admin API unit tests.

It validates with the real entity schemas (so error bodies are the entity layer's), keeps rows in insertion
order, pages with an opaque base64 offset, resolves endpoint keys, and runs every call on one worker
thread like the real store. It deliberately knows nothing of certificates' SNI bookkeeping or cascades:
those belong to the data layer and are covered by the conformance tests against the real store.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from gateway.entities import SCHEMAS
from gateway.entities import targets as targets_entity
from gateway.entities.errors import EntityError, NotFound, invalid_offset, schema_violation, unique_violation

ENDPOINT_KEYS = {"services": "name", "routes": "name", "consumers": "username", "upstreams": "name", "snis": "name"}


def _is_uuid(value: str) -> bool:
    try:
        return len(value) == 36 and bool(uuid.UUID(value))
    except ValueError:
        return False


class FakeDAO:
    def __init__(self, db: FakeDatabase, name: str) -> None:
        self.db = db
        self.name = name
        self.rows: dict[str, dict[str, Any]] = {}

    def _find(self, key: str) -> dict[str, Any] | None:
        if _is_uuid(key):
            return self.rows.get(key)
        field = ENDPOINT_KEYS.get(self.name)
        if field is None:
            return None
        return next((r for r in self.rows.values() if r.get(field) == key), None)

    def select(self, key: str) -> dict[str, Any] | None:
        row = self._find(key)
        return copy.deepcopy(row) if row is not None else None

    def _check(self, row: dict[str, Any], own_id: str | None) -> None:
        errors = SCHEMAS[self.name].validate(row) if self.name in SCHEMAS else {}
        if errors:
            raise schema_violation(errors)
        field = ENDPOINT_KEYS.get(self.name)
        if field and row.get(field) is not None:
            for other in self.rows.values():
                if other["id"] != own_id and other.get(field) == row[field]:
                    raise unique_violation({field: row[field]})

    def _prepare(self, data: Mapping[str, Any], context: str) -> dict[str, Any]:
        if self.name in SCHEMAS:
            return SCHEMAS[self.name].process_auto_fields(dict(data), context)
        row = dict(data)
        row.setdefault("id", str(uuid.uuid4()))
        return row

    def insert(self, data: Mapping[str, Any]) -> dict[str, Any]:
        row = self._prepare(data, "insert")
        self._check(row, None)
        self.rows[row["id"]] = row
        self.db.commit()
        return copy.deepcopy(row)

    def update(self, key: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        current = self._find(key)
        if current is None:
            raise NotFound()
        row = {**current, **dict(patch), "updated_at": int(time.time())}
        self._check(row, current["id"])
        self.rows[current["id"]] = row
        self.db.commit()
        return copy.deepcopy(row)

    def upsert(self, key: str, data: Mapping[str, Any]) -> dict[str, Any]:
        current = self._find(key)
        given = dict(data)
        if current is not None:
            given["id"], given["created_at"] = current["id"], current["created_at"]
        elif _is_uuid(key):
            given["id"] = key
        elif ENDPOINT_KEYS.get(self.name):
            given[ENDPOINT_KEYS[self.name]] = key
        row = self._prepare(given, "upsert")
        self._check(row, row["id"])
        self.rows[row["id"]] = row
        self.db.commit()
        return copy.deepcopy(row)

    def delete(self, key: str) -> bool:
        row = self._find(key)
        if row is None:
            return False
        del self.rows[row["id"]]
        self.db.commit()
        return True

    def page(
        self, size: int = 100, offset: str | None = None, filters: Mapping[str, Any] | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        start = 0
        if offset is not None:
            try:
                start = int(base64.b64decode(offset, validate=True).decode())
            except (binascii.Error, ValueError):
                raise invalid_offset(offset, "bad base64 encoding") from None
        rows = list(self.rows.values())
        for name, value in (filters or {}).items():
            if name in ("tags", "tags_cond"):
                continue
            rows = [r for r in rows if (r.get(name) or {}).get("id") == value]
        if filters and "tags" in filters:
            wanted = set(filters["tags"])
            match_all = filters.get("tags_cond") == "and"
            rows = [
                r
                for r in rows
                if (wanted <= set(r.get("tags") or ()) if match_all else wanted & set(r.get("tags") or ()))
            ]
        chunk = rows[start : start + size]
        more = start + size < len(rows)
        token = base64.b64encode(str(start + size).encode()).decode() if more else None
        return copy.deepcopy(chunk), token

    def all(self) -> list[dict[str, Any]]:
        return copy.deepcopy(list(self.rows.values()))


class FakeDatabase:
    """Implements ``Database`` plus ``run`` (one worker thread)."""

    def __init__(self) -> None:
        self.version = 0
        self._daos = {name: FakeDAO(self, name) for name in SCHEMAS}
        self._subscribers: list[Callable[[int], None]] = []
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fake-store")
        self.replaced: list[Mapping[str, Any]] = []

    def dao(self, entity: str) -> FakeDAO:
        return self._daos[entity]

    def commit(self) -> None:
        self.version += 1
        for callback in self._subscribers:
            callback(self.version)

    def ping(self) -> None:
        """Always reachable (an in-process fake)."""

    def broadcast(self, event: str, data: Mapping[str, Any]) -> None:
        """No other node."""

    def on_event(self, callback: Callable[[str, dict[str, Any]], None]) -> None:
        """No other node."""

    def export(self) -> dict[str, list[dict[str, Any]]]:
        return {name: copy.deepcopy(list(dao.rows.values())) for name, dao in self._daos.items()}

    def replace_all(self, declarative: Mapping[str, Any]) -> None:
        if declarative.get("_format_version") not in ("1.1", "2.1", "3.0"):
            raise EntityError(
                14,
                'declarative config is invalid: {_format_version="expected a supported version"}',
                {"_format_version": "expected a supported version"},
            )
        staged = FakeDatabase()
        for name in SCHEMAS:
            for item in declarative.get(name) or []:
                staged.dao(name).insert(item)
        for name, dao in self._daos.items():
            dao.rows = staged.dao(name).rows
        self.replaced.append(declarative)
        self.commit()

    def select_target(self, upstream: str, key: str) -> dict[str, Any] | None:
        """A target of ``upstream`` (id or name) by its id or its ``host:port`` (Kong's default port applied)."""
        up = self._daos["upstreams"].select(upstream)
        if up is None:
            return None
        formatted, _ = targets_entity.format_target(key)
        for row in self._daos["targets"].rows.values():
            if (row.get("upstream") or {}).get("id") != up["id"]:
                continue
            if row["id"] == key or row["target"] in (key, formatted):
                return copy.deepcopy(row)
        return None

    def subscribe(self, callback: Callable[[int], None]) -> None:
        self._subscribers.append(callback)

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
