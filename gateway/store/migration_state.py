"""What ``gateway migrations`` reads and changes, for either store: the schema state and one target per backend.

``SchemaState`` is Kong's ``schema_state`` reduced to what this gateway has: ``needs_bootstrap``, the migrations
executed and the new ones (no ``pending`` state: no migration here has a teardown phase, so ``up`` completes each
one and ``finish`` always finds nothing to finish). A target is ``PgMigrations`` (``pg_migrate.py``) or
``SqliteMigrations`` below.

SQLite (Kong has no SQLite): the file under the prefix is the database. ``gateway start`` keeps creating and
migrating it by itself (the embedded store stays a one-command default), and the commands work on it as on
PostgreSQL: ``bootstrap`` creates it, ``list`` on a prefix without it exits 3, ``reset`` removes it.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from typing import Protocol

__all__ = ["MigrationTarget", "SchemaState", "SqliteMigrations"]


@dataclass(frozen=True, slots=True)
class SchemaState:
    needs_bootstrap: bool
    executed: list[str]
    new: list[str]

    @classmethod
    def fresh(cls, every: list[str]) -> SchemaState:
        """A database with none of the gateway's tables: every migration is new."""
        return cls(True, [], list(every))

    @property
    def up_to_date(self) -> bool:
        return not self.needs_bootstrap and not self.new


class MigrationTarget(Protocol):
    db_desc: str
    db_name: str

    def state(self) -> SchemaState: ...

    def bootstrap(self) -> list[str] | None: ...

    def up(self) -> list[str]: ...

    def reset(self) -> bool: ...


def _sqlite_names() -> list[str]:
    from gateway.store.sqlite import MIGRATIONS

    return [m.name.split(":", 1)[0] for m in MIGRATIONS]


class SqliteMigrations:
    """``MigrationTarget`` over the SQLite file (see the module docstring)."""

    db_desc = "database"

    def __init__(self, path: str) -> None:
        self.path = path
        self.db_name = path

    def state(self) -> SchemaState:
        names = _sqlite_names()
        if not os.path.exists(self.path):
            return SchemaState.fresh(names)
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        try:
            table = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'schema_migrations'").fetchone()
            if table is None:
                return SchemaState.fresh(names)
            done = {v for (v,) in conn.execute("SELECT version FROM schema_migrations")}
        finally:
            conn.close()
        executed = [n for i, n in enumerate(names, start=1) if i in done]
        return SchemaState(False, executed, [n for n in names if n not in executed])

    def _migrate(self) -> list[str]:
        from gateway.store.sqlite import SqliteBackend

        before = set(self.state().executed)
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        SqliteBackend(self.path).close()  # opening applies every migration the file lacks
        return [n for n in self.state().executed if n not in before]

    def bootstrap(self) -> list[str] | None:
        if not self.state().needs_bootstrap:
            return None
        return self._migrate()

    def up(self) -> list[str]:
        return self._migrate()

    def reset(self) -> bool:
        if self.state().needs_bootstrap and not os.path.exists(self.path):
            return False
        for suffix in ("", "-wal", "-shm"):
            try:
                os.remove(self.path + suffix)
            except FileNotFoundError:
                pass
        return True
