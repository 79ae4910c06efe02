"""The small storage interface under the DAOs, and what both backends share.

A backend stores, per entity, complete rows (JSON objects) keyed by ``id``, plus a few *index columns*
per row computed by the DAO layer (``index_columns``): one per unique field (``u:<field>``), one per
foreign key (``fk:<field>``, the referenced id) and ``cache_key`` for composite uniqueness (plugins'
scope, targets' upstream+target). Backends know nothing about validation; they only answer "who has this
index value", "which rows reference that id" and "the rows after this id, in id order".

Transactions are explicit (``begin``/``commit``/``rollback``) and not nested; the ``Database`` serialises
all access with one lock, so a backend never sees two threads at once. Before committing a transaction that wrote
anything, the ``Database`` calls ``verify``: a backend that can tell a commit would not survive a restart (the SQLite
file was removed or replaced under it) raises ``StoreUnavailable`` there, and the transaction is rolled back, so no
write is ever acknowledged that the next start would not see.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any, Protocol

from gateway.entities.schema import Schema

__all__ = ["Backend", "StoreUnavailable", "dumps", "index_columns"]

Row = dict[str, Any]


class StoreUnavailable(Exception):
    """A write cannot be made durable, so it was refused and rolled back; ``str()`` says why, naming the file.

    Not an ``EntityError``: the request was valid, the store is not. The Admin API answers 500 and logs the message
    at ``crit``.
    """


def dumps(row: Any) -> str:
    """The one JSON encoding of a stored row (compact, UTF-8 kept, key order preserved)."""
    return json.dumps(row, separators=(",", ":"), ensure_ascii=False)


def _scalar(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return dumps(value)


def index_columns(schema: Schema, row: Mapping[str, Any], cache_key: str | None) -> dict[str, str | None]:
    """The index values of ``row``: ``u:<field>`` for unique fields, ``fk:<field>`` for foreign keys."""
    cols: dict[str, str | None] = {}
    for name, f in schema.fields:
        if f.transient:
            continue
        if f.unique:
            cols[f"u:{name}"] = _scalar(row.get(name))
        if f.type == "foreign":
            ref = row.get(name)
            cols[f"fk:{name}"] = ref.get("id") if isinstance(ref, dict) else None
    if schema.cache_key:
        cols["cache_key"] = cache_key
    return cols


class Backend(Protocol):
    """Row storage for all entities. ``column`` names are those produced by ``index_columns``."""

    def begin(self) -> None: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...

    def verify(self) -> None:
        """Raise ``StoreUnavailable`` when a commit now would not survive a restart (called before each commit that
        wrote); nothing to do for a store that lives in memory only."""

    def reading(self) -> AbstractContextManager[None]:
        """Several reads that must see one moment of the store (an export); joins a transaction already open."""

    def publish(self, version: int) -> None:
        """Inside the writing transaction, before its commit: tell other nodes that ``version`` is coming (PostgreSQL
        ``NOTIFY``); nothing to do for a store that only this process uses."""

    def ping(self) -> None:
        """Raise ``StoreUnavailable`` when the store cannot answer now (``GET /status``'s ``database.reachable``)."""

    def broadcast(self, payload: str) -> None:
        """Send ``payload`` to the other nodes sharing the store at once, outside any transaction (Kong's cluster
        events: health forced through the Admin API); nothing to do for a store that only this process uses."""

    def get(self, entity: str, id: str) -> Row | None:
        """The row with that id, as a fresh dict (callers may mutate it)."""

    def find(self, entity: str, column: str, value: str) -> Row | None:
        """The row whose unique index ``column`` equals ``value``."""

    def put(self, entity: str, row: Row, columns: Mapping[str, str | None]) -> None:
        """Insert or replace the row with ``row["id"]`` and its index values."""

    def delete(self, entity: str, id: str) -> None: ...

    def scan(
        self, entity: str, after: str | None = None, limit: int | None = None, where: Mapping[str, str] | None = None
    ) -> list[Row]:
        """Rows in ascending id order, strictly after ``after``, matching every ``column == value``."""

    def clear(self, entity: str) -> None:
        """Remove every row of ``entity`` (used by ``replace_all`` inside its transaction)."""

    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...

    def close(self) -> None: ...
