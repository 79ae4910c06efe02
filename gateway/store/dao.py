"""Kong's DAO semantics over a ``Backend``: one generic DAO, plus the entity-specific rules of ``kong/db/dao``.

Every public write opens (or joins) the database transaction and runs, in Kong's order:

    entity hooks (e.g. the SNI list checks) -> auto fields and defaults -> schema validation
    -> transformations (ca digest) -> primary key / unique / foreign key checks -> write -> children

Any ``EntityError`` raised on the way rolls the whole transaction back, so a rejected write changes
nothing, including the SNI rows of a certificate or the cascade of a delete.

Deletes follow the relations declared by the schemas: a child whose foreign key has
``on_delete="cascade"`` is deleted with its parent (recursively); any other reference makes the delete
fail with Kong's ``an existing '<child>' entity references this '<parent>' entity``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any, Protocol

from gateway.entities.errors import (
    NotFound,
    foreign_key_restricted,
    foreign_key_violation,
    foreign_keys_unresolved,
    primary_key_violation,
    schema_violation,
    unique_violation,
)
from gateway.entities.schema import Schema
from gateway.entities.values import is_uuid
from gateway.store.backend import Backend, Row, dumps, index_columns
from gateway.store.pagination import DEFAULT_PAGE_SIZE, check_size, decode_offset, encode_offset

__all__ = ["DAO", "DaoHost", "merge_values", "require_mapping"]


class DaoHost(Protocol):
    """What a DAO needs of its database (``database.Database``): the backend, its lock and transaction, the
    other DAOs and the relations between entities. A Protocol, so that the DAOs sit below the database."""

    backend: Backend
    lock: threading.RLock

    def transaction(self) -> AbstractContextManager[None]: ...

    def dao_internal(self, entity: str) -> DAO: ...

    def children(self, entity: str) -> list[tuple[str, str, str | None]]: ...

    def new_id(self) -> str: ...

    def put(self, entity: str, row: Row, columns: Mapping[str, str | None]) -> None: ...

    def remove(self, entity: str, id: str) -> None: ...


def merge_values(schema: Schema | None, top: Mapping[str, Any], bottom: Mapping[str, Any]) -> dict[str, Any]:
    """Kong's ``merge_values``: ``top`` wins; records present on both sides are merged field by field."""
    out = dict(bottom)
    for key, value in top.items():
        f = schema.get_field(key) if schema is not None else None
        below = bottom.get(key)
        if f is not None and f.type == "record" and isinstance(value, dict) and isinstance(below, dict):
            out[key] = merge_values(f.record, value, below)
        else:
            out[key] = value
    return out


class DAO:
    """CRUD for one entity with Kong's validation, defaults, uniqueness and foreign-key rules."""

    def __init__(self, db: DaoHost, schema: Schema) -> None:
        self.db = db
        self.schema = schema
        self.name = schema.name

    # ================================================================== reads
    def select(self, key: str) -> Row | None:
        """By id, or (when ``key`` is not a known id) by the endpoint key (e.g. a service name)."""
        with self.db.lock:
            row = self._lookup(key)
            return self._output(row) if row is not None else None

    def page(
        self, size: int = DEFAULT_PAGE_SIZE, offset: str | None = None, filters: Mapping[str, Any] | None = None
    ) -> tuple[list[Row], str | None]:
        """One page in id order and the token of the next page (None on the last page).

        ``filters``: a foreign-key field name mapped to an id (or ``{"id": ...}``), e.g.
        ``{"service": "<uuid>"}``; ``tags`` (a list: rows having every tag) with ``tags_mode="or"`` for
        rows having any of them.
        """
        size = check_size(size)
        after = decode_offset(offset) if offset is not None else None
        where: dict[str, str] = {}
        tags: list[str] | None = None
        mode = "and"
        for key, value in (filters or {}).items():
            if key == "tags":
                tags = [value] if isinstance(value, str) else list(value)
            elif key == "tags_mode":
                mode = str(value)
            else:
                where[f"fk:{key}"] = str(value.get("id") if isinstance(value, Mapping) else value)
        with self.db.lock:
            rows: list[Row] = []
            more = False
            cursor = after
            while True:
                batch = self.db.backend.scan(self.name, cursor, size + 1 if tags is None else 500, where)
                for row in batch:
                    if tags is not None and not _has_tags(row.get("tags"), tags, mode):
                        continue
                    if len(rows) == size:
                        more = True
                        break
                    rows.append(row)
                if more or tags is None or len(batch) < 500:
                    break
                cursor = batch[-1]["id"]
            out = self._output_many(rows)
        return out, (encode_offset(rows[-1]["id"]) if more and rows else None)

    def all(self) -> list[Row]:
        """Every row, in id order (for export)."""
        with self.db.lock:
            return self._output_many(self.db.backend.scan(self.name))

    # ================================================================== writes
    def insert(self, data: Mapping[str, Any]) -> Row:
        """POST semantics: a new entity with defaults, generated ``id`` and timestamps."""
        with self.db.transaction():
            return self._output(self._insert(dict(require_mapping(data)), time.time()))

    def update(self, key: str, patch: Mapping[str, Any]) -> Row:
        """PATCH semantics: merge into the stored row and revalidate it. ``NotFound`` when ``key`` is unknown."""
        with self.db.transaction():
            existing = self._lookup(key)
            if existing is None:
                raise NotFound()
            return self._output(self._update(existing, dict(require_mapping(patch)), time.time()))

    def upsert(self, key: str, data: Mapping[str, Any]) -> Row:
        """PUT semantics: replace the entity (keeping ``id``/``created_at``), or create it with that id or key."""
        with self.db.transaction():
            data = dict(require_mapping(data))
            existing = self._lookup(key)
            if existing is None and not is_uuid(key):
                if self.schema.endpoint_key is None:
                    raise NotFound()
                data[self.schema.endpoint_key] = key
            elif existing is not None and self.schema.endpoint_key and not is_uuid(key):
                data[self.schema.endpoint_key] = key
            return self._output(self._upsert(key, existing, data, time.time()))

    def delete(self, key: str) -> bool:
        """Delete with Kong's cascades and refusals; False when nothing matched ``key``."""
        with self.db.transaction():
            existing = self._lookup(key)
            if existing is None:
                return False
            self._delete(existing)
            return True

    # ================================================================== internals (inside a transaction)
    def _lookup(self, key: str) -> Row | None:
        if not isinstance(key, str):
            return None
        backend = self.db.backend
        if is_uuid(key):
            row = backend.get(self.name, key)
            if row is not None:
                return row
        ek = self.schema.endpoint_key
        if ek is not None:
            f = self.schema.get_field(ek)
            if f is not None and f.unique:
                return backend.find(self.name, f"u:{ek}", key)
        return None

    def _output(self, row: Row) -> Row:
        return row

    def _output_many(self, rows: list[Row]) -> list[Row]:
        return [self._output(r) for r in rows]

    def _prepare(self, data: dict[str, Any], context: str) -> None:
        """Entity hook run on the raw input before auto fields (targets normalise ``target`` here)."""

    def _transform(self, row: dict[str, Any]) -> None:
        """Entity hook run after validation (ca_certificates compute ``cert_digest`` here)."""

    def _validated(self, row: dict[str, Any], full_check: bool, updating: bool) -> None:
        errors = self.schema.validate(row, full_check=full_check, updating=updating)
        if errors:
            raise schema_violation(errors)

    def _resolve_foreign(self, data: dict[str, Any]) -> None:
        """Kong's ``resolve_foreign``: a foreign key given by a unique field (``{"name": "svc"}``) becomes its id.

        A value that already holds a valid primary key is left for the normal checks; so is one that names
        no unique field (validation then reports it). A unique value that matches nothing is code 13.
        """
        unresolved: dict[str, dict[str, tuple[str, Any, str]]] = {}
        for name, f in self.schema.foreign_fields:
            value = data.get(name)
            if not isinstance(value, Mapping) or f.reference is None or is_uuid(value.get("id")):
                continue
            ref_schema = self.db.dao_internal(f.reference).schema
            misses: dict[str, tuple[str, Any, str]] = {}
            for unique_name, unique_field in ref_schema.fields:
                if not (unique_field.unique or ref_schema.endpoint_key == unique_name):
                    continue
                wanted = value.get(unique_name)
                if not isinstance(wanted, str) or not wanted:
                    continue
                found = self.db.backend.find(f.reference, f"u:{unique_name}", wanted)
                if found is not None:
                    data[name] = {"id": found["id"]}
                    misses = {}
                    break
                misses[unique_name] = (unique_name, wanted, f.reference)
            if misses:
                unresolved[name] = misses
        if unresolved:
            raise foreign_keys_unresolved(unresolved)

    def _insert(self, data: dict[str, Any], now: float) -> Row:
        self._resolve_foreign(data)
        self._prepare(data, "insert")
        row = self.schema.process_auto_fields(data, "insert", now)
        self._validated(row, True, False)
        self._transform(row)
        row = self.schema.complete(row)
        if self.db.backend.get(self.name, row["id"]) is not None:
            raise primary_key_violation({"id": row["id"]})
        self._write(row)
        return row

    def _update(self, existing: Row, patch: dict[str, Any], now: float) -> Row:
        self._resolve_foreign(patch)
        self._prepare(patch, "update")
        processed = self.schema.process_auto_fields(patch, "update", now)
        # the stored row keeps its nulls, as the Admin API reads it (``nulls = true``): a check over an
        # unset optional field then runs with null instead of failing "field required for entity check"
        merged = merge_values(self.schema, processed, existing)
        merged["id"] = existing["id"]
        self._validated(merged, False, True)
        self._transform(merged)
        row = self.schema.complete(merged)
        row["created_at"] = existing.get("created_at")
        self._write(row)
        return row

    def _upsert(self, key: str, existing: Row | None, data: dict[str, Any], now: float) -> Row:
        if existing is not None:
            data["id"] = existing["id"]
        else:
            data["id"] = key if is_uuid(key) else self.db.new_id()
        self._resolve_foreign(data)
        self._prepare(data, "upsert")
        row = self.schema.process_auto_fields(data, "upsert", now)
        self._validated(row, True, False)
        self._transform(row)
        row = self.schema.complete(row)
        if existing is not None and "created_at" in existing:
            row["created_at"] = existing["created_at"]
        self._write(row)
        return row

    def _cache_key(self, row: Mapping[str, Any]) -> str | None:
        if not self.schema.cache_key:
            return None
        parts = []
        for name in self.schema.cache_key:
            value = row.get(name)
            parts.append(value.get("id") if isinstance(value, Mapping) else value)
        return dumps(parts)

    def _cache_key_fields(self, row: Mapping[str, Any]) -> dict[str, Any]:
        return {name: row.get(name) for name in sorted(self.schema.cache_key)}

    def _write(self, row: Row) -> None:
        """Unique and foreign-key checks, then the write itself."""
        backend = self.db.backend
        columns = index_columns(self.schema, row, self._cache_key(row))
        for name, f in self.schema.fields:
            value = columns.get(f"u:{name}")
            if f.unique and value is not None:
                other = backend.find(self.name, f"u:{name}", value)
                if other is not None and other["id"] != row["id"]:
                    raise unique_violation({name: row[name]})
        if columns.get("cache_key") is not None:
            other = backend.find(self.name, "cache_key", columns["cache_key"] or "")
            if other is not None and other["id"] != row["id"]:
                raise unique_violation(self._cache_key_fields(row))
        for name, f in self.schema.foreign_fields:
            ref = row.get(name)
            missing = (
                isinstance(ref, Mapping) and f.reference is not None and backend.get(f.reference, ref["id"]) is None
            )
            if missing:
                assert isinstance(ref, Mapping) and f.reference is not None
                raise foreign_key_violation(name, {"id": ref["id"]}, f.reference)
        self.db.put(self.name, row, columns)

    def _before_delete(self, row: Row) -> None:
        """Entity hook: refuse a delete (ca_certificates still referenced)."""

    def _delete(self, row: Row) -> None:
        self._before_delete(row)
        for child, field_name, on_delete in self.db.children(self.name):
            referencing = self.db.backend.scan(child, where={f"fk:{field_name}": row["id"]})
            if not referencing:
                continue
            if on_delete != "cascade":
                raise foreign_key_restricted(self.name, child)
            child_dao = self.db.dao_internal(child)
            for child_row in referencing:
                if self.db.backend.get(child, child_row["id"]) is not None:
                    child_dao._delete(child_row)
        self.db.remove(self.name, row["id"])


def _has_tags(row_tags: Any, wanted: list[str], mode: str) -> bool:
    have = set(row_tags or [])
    if mode == "or":
        return any(t in have for t in wanted)
    return all(t in have for t in wanted)


def require_mapping(data: Any) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise schema_violation({"@entity": ["expected an input table"]})
    return data
