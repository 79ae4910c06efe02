"""The SQLite backend: the embedded default, one real database file under the prefix.

Layout (generated from the entity schemas by migration 1):

- one table per entity: ``id TEXT PRIMARY KEY``, ``row TEXT`` (the complete row as JSON), and one column
  per index value: ``u_<field>`` (UNIQUE) for unique fields, ``fk_<field>`` (indexed) for foreign keys,
  ``cache_key`` (UNIQUE) for composite uniqueness. The DAO layer checks uniqueness itself (to produce
  Kong's messages); the UNIQUE constraints are a safety net.
- ``schema_meta(key, value)``: the configuration version, and anything else the store must remember.
- ``schema_migrations(version, name, applied_at)``: the versioned migrations applied so far. ``MIGRATIONS``
  is append-only; each entry runs once, in order, in its own transaction, when the file is opened.

The connection is in autocommit mode and transactions are explicit (``BEGIN IMMEDIATE``), the journal is
WAL (readers never block the writer), and SQLite's own foreign keys are off: the DAOs implement Kong's
cascade/restrict rules so that errors carry Kong's messages.

The file under the connection (``verify``): SQLite keeps writing to the files it opened, by descriptor. If the
database file is deleted (or renamed, or replaced by another file) while the gateway runs, every later commit
succeeds into an unlinked inode and vanishes at the next start, which opens whatever is at the path then. So the
identity (``st_dev``, ``st_ino``) of the database file, and of its ``-wal`` file, is taken once they are open and
compared with ``os.stat`` of their paths before every commit that wrote (two ``stat`` calls, a few microseconds).
A mismatch raises ``StoreUnavailable`` and the transaction is rolled back: nothing is written, nothing is
acknowledged. The inode cannot be reused by a new file while the connection holds it open, so an equal identity
means the same file. The WAL matters as much as the database: committed pages live in ``-wal`` until a checkpoint
copies them into the database file, so a removed ``-wal`` loses every write since the last checkpoint. SQLite does
not remove ``-wal`` while a connection is open (only the last connection to close does), so it is stable for the
life of this one. ``-shm`` is only an index of the WAL, rebuilt from it by the next connection, so losing it loses
no data and it is not checked. Reads keep being served from the open files.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

from gateway.entities import SCHEMAS
from gateway.entities.schema import Schema
from gateway.store.backend import Row, StoreUnavailable, dumps, index_columns
from gateway.store.sql import column_name, quote_identifier, scan_query

__all__ = ["MIGRATIONS", "Migration", "SqliteBackend", "column_name"]


FileId = tuple[int, int]
"""``(st_dev, st_ino)``: which file a path names."""


def file_id(path: str) -> FileId | None:
    """The identity of the file at ``path`` now, or None when nothing is there."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino)


_q = quote_identifier


def create_entity_table(conn: sqlite3.Connection, schema: Schema) -> None:
    """The table of one entity, with its index columns (see the module docstring)."""
    cols = ["id TEXT PRIMARY KEY NOT NULL", "row TEXT NOT NULL"]
    indexes: list[str] = []
    for column in index_columns(schema, {}, None):
        name = column_name(column)
        if column.startswith("fk:"):
            cols.append(f"{_q(name)} TEXT")
            indexes.append(f"CREATE INDEX {_q(schema.name + '_' + name)} ON {_q(schema.name)} ({_q(name)})")
        else:
            cols.append(f"{_q(name)} TEXT UNIQUE")
    conn.execute(f"CREATE TABLE {_q(schema.name)} ({', '.join(cols)})")
    for statement in indexes:
        conn.execute(statement)


_LATER_ENTITIES = frozenset({"acls"})
"""Entities whose table a later migration creates: migration 1 must build exactly the tables it built when it was
released, so that a store created then and one created now end up the same."""


def _migration_1(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE schema_meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL)")
    for schema in SCHEMAS.values():
        if schema.name not in _LATER_ENTITIES:
            create_entity_table(conn, schema)


def _migration_2(conn: sqlite3.Connection) -> None:
    create_entity_table(conn, SCHEMAS["acls"])


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema change. ``apply`` runs inside a transaction; never edit a released migration."""

    version: int
    name: str
    apply: Callable[[sqlite3.Connection], None]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "000_base: schema_meta and one table per core entity", _migration_1),
    Migration(2, "001_acls: the acl plugin's groups", _migration_2),
)


class SqliteBackend:
    """``Backend`` over one SQLite file; see the module docstring."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        (mode,) = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA foreign_keys=OFF")
        self._conn.execute("PRAGMA busy_timeout=5000")
        self.migrate()
        # taken after ``migrate``: both files exist once the connection has read through the WAL
        self._files: dict[str, FileId | None] = {path: file_id(path)}
        if str(mode).lower() == "wal":
            self._files[path + "-wal"] = file_id(path + "-wal")

    # ------------------------------------------------------------------ migrations
    def migrate(self) -> list[int]:
        """Apply the migrations this file has not seen yet; returns the versions applied now."""
        conn = self._conn
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)"
        )
        done = {v for (v,) in conn.execute("SELECT version FROM schema_migrations")}
        applied: list[int] = []
        for migration in MIGRATIONS:
            if migration.version in done:
                continue
            conn.execute("BEGIN IMMEDIATE")
            try:
                migration.apply(conn)
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (migration.version, migration.name, int(time.time())),
                )
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            applied.append(migration.version)
        return applied

    # ------------------------------------------------------------------ transactions
    def begin(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self._conn.execute("COMMIT")

    def verify(self) -> None:
        """Raise ``StoreUnavailable`` when the database or its WAL at their paths are no longer the files this
        connection writes to (see the module docstring)."""
        for path, opened in self._files.items():
            if opened is None:
                continue
            now = file_id(path)
            if now != opened:
                what = "removed" if now is None else "replaced by another file"
                kind = "write-ahead log" if path.endswith("-wal") else "database file"
                raise StoreUnavailable(
                    f"{kind} {path} was {what} while in use: writes are refused, as they would be lost at the next "
                    "start (reads are still served from the file opened at start)"
                )

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
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    # ------------------------------------------------------------------ Backend
    def get(self, entity: str, id: str) -> Row | None:
        cur = self._conn.execute(f"SELECT row FROM {_q(entity)} WHERE id = ?", (id,))
        found = cur.fetchone()
        return json.loads(found[0]) if found else None

    def find(self, entity: str, column: str, value: str) -> Row | None:
        cur = self._conn.execute(f"SELECT row FROM {_q(entity)} WHERE {_q(column_name(column))} = ?", (value,))
        found = cur.fetchone()
        return json.loads(found[0]) if found else None

    def put(self, entity: str, row: Row, columns: Mapping[str, str | None]) -> None:
        names = ["id", "row", *(column_name(c) for c in columns)]
        values = [row["id"], dumps(row), *columns.values()]
        sql = (
            f"INSERT OR REPLACE INTO {_q(entity)} ({', '.join(_q(n) for n in names)}) "
            f"VALUES ({', '.join('?' for _ in names)})"
        )
        self._conn.execute(sql, values)

    def delete(self, entity: str, id: str) -> None:
        self._conn.execute(f"DELETE FROM {_q(entity)} WHERE id = ?", (id,))

    def scan(
        self, entity: str, after: str | None = None, limit: int | None = None, where: Mapping[str, str] | None = None
    ) -> list[Row]:
        sql, args = scan_query(entity, after, limit, where, "?")
        return [json.loads(r) for (r,) in self._conn.execute(sql, args)]

    def clear(self, entity: str) -> None:
        self._conn.execute(f"DELETE FROM {_q(entity)}")

    def get_meta(self, key: str) -> str | None:
        found = self._conn.execute("SELECT value FROM schema_meta WHERE key = ?", (key,)).fetchone()
        return found[0] if found else None

    def set_meta(self, key: str, value: str) -> None:
        self._conn.execute("INSERT OR REPLACE INTO schema_meta (key, value) VALUES (?, ?)", (key, value))

    def close(self) -> None:
        self._conn.close()
