"""The PostgreSQL backend: one database shared by several gateway nodes (Kong's traditional mode).

Driver: psycopg 3, synchronous. The store's contract is synchronous already (every call runs on the store's one
worker thread, ``Database.run``), and measured for this access pattern (many small queries in a row, from that
thread; ``benchmarks/pg_drivers.py``), psycopg 3 answered a primary-key select in 55 µs and an upsert in 74 µs,
asyncpg awaited on a running loop in 76 and 98 µs, and asyncpg under a synchronous interface (one
``run_until_complete`` per query, which is what the store would need) in 183 and 116 µs.

Connections: the store's one connection (all reads and writes of this node, one at a time; so any
``pg_max_concurrent_queries`` limit is met), opened lazily and reopened after a failure, and the change watcher's
own (``pg_watch.py``). ``pg_timeout`` is the connect timeout and the server's ``statement_timeout``.

Writes across nodes: every write transaction first takes one transaction-scoped advisory lock
(``pg_advisory_xact_lock``), so writers on all nodes run one after another; inside it the DAOs' checks (unique
names, foreign keys) see every earlier commit of every node, and two nodes racing to create one name give one 201
and one 409 with Kong's message. The tables' own constraints are the second line (``pg_schema.py``). The
configuration version lives in ``schema_meta``; the writer increments it under the lock, and ``publish`` sends it
with ``pg_notify`` in the same transaction (delivered only if it commits).

Failures: any connection or server error becomes ``StoreUnavailable`` (the Admin API answers 500 and logs it); a
broken connection is dropped and the next call reconnects. A statement outside a transaction (a read, a ``BEGIN``)
that finds the connection broken, as the first one after a server restart does, is tried once more on a new
connection; a statement inside a transaction is not (the transaction is gone with its connection). A commit that
failed is never acknowledged.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from gateway.store.backend import Row, StoreUnavailable, dumps
from gateway.store.pg_schema import qi
from gateway.store.sql import column_name, scan_query

__all__ = ["CHANNEL", "EVENTS", "PgParams", "PostgresBackend", "connect"]

CHANNEL = "gateway_config"
"""The LISTEN/NOTIFY channel of committed changes; the payload is the new configuration version."""

EVENTS = "gateway_events"
"""The channel of events that are not stored (Kong's cluster events): a JSON object naming its node and event."""

WRITE_LOCK = 0x6B6F6E67  # "kong": the advisory lock every write transaction holds (pg_advisory_xact_lock)


@dataclass(frozen=True, slots=True)
class PgParams:
    """The ``pg_*`` settings, as the driver needs them."""

    host: str = "127.0.0.1"
    port: int = 5432
    user: str = "kong"
    password: str | None = None
    database: str = "kong"
    schema: str | None = None
    timeout_ms: int = 5000
    ssl: bool = False
    ssl_verify: bool = False
    trusted: tuple[str, ...] = ("system",)

    @classmethod
    def from_settings(cls, settings: Any) -> PgParams:
        return cls(
            host=settings.pg_host,
            port=settings.pg_port,
            user=settings.pg_user,
            password=settings.pg_password,
            database=settings.pg_database,
            schema=settings.pg_schema,
            timeout_ms=settings.pg_timeout,
            ssl=settings.pg_ssl,
            ssl_verify=settings.pg_ssl_verify,
            trusted=tuple(settings.lua_ssl_trusted_certificate),
        )

    def describe(self) -> str:
        """``127.0.0.1:5432/kong`` (and ``schema s``): what the error messages name."""
        where = f"{self.host}:{self.port}/{self.database}"
        return f"{where} (schema {self.schema})" if self.schema else where

    def connect_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "dbname": self.database,
            "connect_timeout": max(2, math.ceil(self.timeout_ms / 1000)),
            "application_name": "gateway",
            "options": f"-c statement_timeout={self.timeout_ms}",
            "sslmode": "disable",
        }
        if self.password is not None:
            kwargs["password"] = self.password
        if self.ssl:
            kwargs["sslmode"] = "verify-full" if self.ssl_verify else "require"
            if self.ssl_verify:
                if len(self.trusted) != 1:
                    raise StoreUnavailable(
                        "pg_ssl_verify needs exactly one lua_ssl_trusted_certificate entry (a PEM file or system), "
                        f"got {len(self.trusted)}"
                    )
                kwargs["sslrootcert"] = self.trusted[0]
        return kwargs


def connect(params: PgParams, autocommit: bool = True) -> psycopg.Connection[Any]:
    """A new connection with ``search_path`` set to ``pg_schema`` (when set); ``StoreUnavailable`` when it fails."""
    try:
        conn = psycopg.connect(autocommit=autocommit, **params.connect_kwargs())
    except psycopg.Error as exc:
        raise StoreUnavailable(f"database unreachable: postgres {params.describe()}: {_reason(exc)}") from None
    if params.schema:
        try:
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(params.schema)))
        except psycopg.Error as exc:
            conn.close()
            raise StoreUnavailable(f"postgres {params.describe()}: {_reason(exc)}") from None
    return conn


def _reason(exc: BaseException) -> str:
    """The driver's message on one line."""
    return " ".join(str(exc).split()) or type(exc).__name__


class _Lost(StoreUnavailable):
    """The connection broke (the server restarted, a network cut): outside a transaction, the statement is tried
    once more on a new connection, since nothing of it can have been applied; inside one, the transaction is lost."""


_ATTEMPTS = (1, 2)


class PostgresBackend:
    """``Backend`` over one PostgreSQL connection; see the module docstring."""

    def __init__(self, params: PgParams) -> None:
        self.params = params
        self._conn: psycopg.Connection[Any] | None = None
        self._in_tx = False

    # ------------------------------------------------------------------ connection
    def _connection(self) -> psycopg.Connection[Any]:
        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            if conn is not None:
                conn.close()
            self._conn = conn = connect(self.params)
        return conn

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @contextmanager
    def _guard(self) -> Iterator[psycopg.Connection[Any]]:
        """The connection; any driver error becomes ``StoreUnavailable`` (``_Lost`` when the connection broke,
        which is then dropped)."""
        conn = self._connection()
        try:
            yield conn
        except psycopg.Error as exc:
            if conn.broken or conn.closed or isinstance(exc, psycopg.OperationalError):
                self._drop()
                raise _Lost(f"postgres {self.params.describe()}: {_reason(exc)}") from None
            raise StoreUnavailable(f"postgres {self.params.describe()}: {_reason(exc)}") from None

    def _execute(self, query: str, args: Any, fetch: bool) -> list[tuple[Any, ...]]:
        for attempt in _ATTEMPTS:
            try:
                with self._guard() as conn:
                    cur = conn.execute(query.encode(), args)
                    return cur.fetchall() if fetch else []
            except _Lost:
                if self._in_tx or attempt == _ATTEMPTS[-1]:
                    raise
        raise AssertionError("unreachable")

    def _rows(self, query: str, args: Any = ()) -> list[tuple[Any, ...]]:
        return self._execute(query, args, fetch=True)

    def _run(self, query: str, args: Any = ()) -> None:
        self._execute(query, args, fetch=False)

    def ping(self) -> None:
        """One round trip; ``StoreUnavailable`` when the database does not answer."""
        self._rows("SELECT 1")

    # ------------------------------------------------------------------ transactions
    def begin(self) -> None:
        self._run("BEGIN")  # outside the transaction still: a connection found broken here is replaced at once
        self._in_tx = True
        try:
            self._run("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
        except BaseException:
            self.rollback()
            raise

    def commit(self) -> None:
        try:
            self._run("COMMIT")  # still inside: a COMMIT is never retried on another connection
        finally:
            self._in_tx = False

    def rollback(self) -> None:
        self._in_tx = False
        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            self._drop()
            return
        try:
            conn.execute(b"ROLLBACK")
        except psycopg.Error:
            self._drop()

    def verify(self) -> None:
        """Nothing to check before a commit: the server says at ``COMMIT`` whether it kept the transaction."""

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Several reads from one snapshot (an export: every table as of one moment, whatever other nodes write)."""
        if self._in_tx:
            yield
            return
        self._run("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        self._in_tx = True  # no read is retried on another connection: it would read outside the snapshot
        try:
            yield
        except BaseException:
            self.rollback()
            raise
        self.commit()

    def broadcast(self, payload: str) -> None:
        """An event for the other nodes (``EVENTS``), sent at once: outside a transaction, or with the one open."""
        self._run("SELECT pg_notify(%s, %s)", (EVENTS, payload))

    def publish(self, version: int) -> None:
        """Tell the other nodes (inside the writing transaction: sent only when it commits)."""
        self._run("SELECT pg_notify(%s, %s)", (CHANNEL, str(version)))

    # ------------------------------------------------------------------ Backend
    def get(self, entity: str, id: str) -> Row | None:
        found = self._rows(f"SELECT row FROM {qi(entity)} WHERE id = %s", (id,))
        return json.loads(found[0][0]) if found else None

    def find(self, entity: str, column: str, value: str) -> Row | None:
        found = self._rows(f"SELECT row FROM {qi(entity)} WHERE {qi(column_name(column))} = %s", (value,))
        return json.loads(found[0][0]) if found else None

    def put(self, entity: str, row: Row, columns: Mapping[str, str | None]) -> None:
        names = ["id", "row", *(column_name(c) for c in columns)]
        updates = ", ".join(f"{qi(n)} = EXCLUDED.{qi(n)}" for n in names[1:])
        self._run(
            f"INSERT INTO {qi(entity)} ({', '.join(qi(n) for n in names)}) "
            f"VALUES ({', '.join('%s' for _ in names)}) ON CONFLICT (id) DO UPDATE SET {updates}",
            [row["id"], dumps(row), *columns.values()],
        )

    def delete(self, entity: str, id: str) -> None:
        self._run(f"DELETE FROM {qi(entity)} WHERE id = %s", (id,))

    def scan(
        self, entity: str, after: str | None = None, limit: int | None = None, where: Mapping[str, str] | None = None
    ) -> list[Row]:
        query, args = scan_query(entity, after, limit, where, "%s")
        return [json.loads(r) for (r,) in self._rows(query, args)]

    def clear(self, entity: str) -> None:
        self._run(f"DELETE FROM {qi(entity)}")

    def get_meta(self, key: str) -> str | None:
        found = self._rows("SELECT value FROM schema_meta WHERE key = %s", (key,))
        return str(found[0][0]) if found else None

    def set_meta(self, key: str, value: str) -> None:
        self._run(
            "INSERT INTO schema_meta (key, value) VALUES (%s, %s) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            (key, value),
        )

    def close(self) -> None:
        self._drop()
