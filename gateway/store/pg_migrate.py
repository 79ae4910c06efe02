"""The PostgreSQL side of ``gateway migrations``: read the schema state, bootstrap, run new migrations, reset.

Each command runs in one transaction holding an advisory lock of its own (``MIGRATIONS_LOCK``), and reads the state
again under it: two nodes bootstrapping one database at the same moment give one bootstrap and one "already
bootstrapped", never two half-made schemas. PostgreSQL's DDL is transactional, so a migration that fails leaves
the database as it was.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql

from gateway.store.backend import StoreUnavailable
from gateway.store.migration_state import SchemaState
from gateway.store.pg_schema import MIGRATIONS, TABLES, qi
from gateway.store.postgres import PgParams, connect

__all__ = ["PgMigrations"]

MIGRATIONS_LOCK = 0x6D696772  # "migr"


class PgMigrations:
    """``MigrationTarget`` over a PostgreSQL database (``gateway.store.migration_state``)."""

    db_desc = "database"

    def __init__(self, params: PgParams) -> None:
        self.params = params
        self.db_name = params.database

    @contextmanager
    def _locked(self) -> Iterator[Any]:
        """One transaction under the migrations lock; driver errors become ``StoreUnavailable``."""
        conn = connect(self.params)
        try:
            with conn.transaction():
                conn.execute(b"SELECT pg_advisory_xact_lock(%s)", (MIGRATIONS_LOCK,))
                yield conn
        except psycopg.Error as exc:
            raise StoreUnavailable(f"postgres {self.params.describe()}: {' '.join(str(exc).split())}") from None
        finally:
            conn.close()

    def _state(self, conn: Any) -> SchemaState:
        schema = self.params.schema
        if schema:
            found = conn.execute(b"SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
            if found is None:
                return SchemaState.fresh([m.name for m in MIGRATIONS])
        (table,) = conn.execute(b"SELECT to_regclass('schema_migrations')").fetchone()
        if table is None:
            return SchemaState.fresh([m.name for m in MIGRATIONS])
        done = {name for (name,) in conn.execute(b"SELECT name FROM schema_migrations")}
        executed = [m.name for m in MIGRATIONS if m.name in done]
        return SchemaState(False, executed, [m.name for m in MIGRATIONS if m.name not in done])

    def state(self) -> SchemaState:
        with self._locked() as conn:
            return self._state(conn)

    def bootstrap(self) -> list[str] | None:
        """The migrations run, or None when the database was already bootstrapped (by another node, maybe)."""
        with self._locked() as conn:
            if not self._state(conn).needs_bootstrap:
                return None
            if self.params.schema:
                conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.params.schema)))
                conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(self.params.schema)))
            conn.execute(
                b"CREATE TABLE schema_migrations (name TEXT PRIMARY KEY NOT NULL, executed_at BIGINT NOT NULL)"
            )
            return self._apply(conn, [m.name for m in MIGRATIONS])

    def up(self) -> list[str]:
        """The new migrations run now (empty when the database is up to date)."""
        with self._locked() as conn:
            state = self._state(conn)
            if state.needs_bootstrap:
                raise StoreUnavailable("the database needs bootstrapping")
            return self._apply(conn, state.new)

    def _apply(self, conn: Any, names: list[str]) -> list[str]:
        with conn.cursor() as cur:
            for migration in MIGRATIONS:
                if migration.name in names:
                    migration.apply(cur)
                    cur.execute(
                        b"INSERT INTO schema_migrations (name, executed_at) VALUES (%s, %s)",
                        (migration.name, int(time.time())),
                    )
        return [m.name for m in MIGRATIONS if m.name in names]

    def reset(self) -> bool:
        """Drop every table of the gateway (the whole schema when ``pg_schema`` names one); False when there was
        nothing bootstrapped to reset."""
        with self._locked() as conn:
            if self._state(conn).needs_bootstrap:
                return False
            if self.params.schema:
                conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(self.params.schema)))
            else:
                conn.execute(f"DROP TABLE IF EXISTS {', '.join(qi(t) for t in TABLES)} CASCADE".encode())
            return True
