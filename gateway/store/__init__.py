"""Persistence of the configuration: ``open_store(settings)`` (or ``open_database``) returns the process's ``Database``.

``kind`` is ``sqlite`` (the embedded default: a real database file at ``path``), ``postgres`` (a database shared by
several nodes: ``postgres.py``, its schema and migrations in ``pg_schema.py`` and ``pg_migrate.py``, other nodes'
writes seen by ``pg_watch.py``) or ``off`` (DB-less: in memory, filled from a declarative configuration with
``Database.replace_all``). See ``interface.py`` for the contract the Admin API and the runtime rely on (``Store``),
``dao.py`` and ``entity_daos.py`` for Kong's write semantics, ``declarative.py`` for kong.yml and ``migrations.py``
for ``gateway migrations``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway.entities import ENTITY_NAMES
from gateway.store.backend import StoreUnavailable
from gateway.store.database import Database
from gateway.store.memory import MemoryBackend

__all__ = ["Database", "StoreUnavailable", "open_database", "open_store"]


def open_database(kind: str, path: str | None = None, *, params: Any = None) -> Database:
    """Open the store: ``open_database("sqlite", "/prefix/gateway.db")``, ``open_database("off")`` or
    ``open_database("postgres", params=PgParams(...))`` (a bootstrapped database; nothing is checked or watched).

    Raises ``ValueError`` for an unknown kind or a missing SQLite path, ``StoreUnavailable`` for a database that
    cannot be reached.
    """
    if kind == "off":
        return Database(MemoryBackend(list(ENTITY_NAMES)), "off")
    if kind == "sqlite":
        if not path:
            raise ValueError("database = sqlite needs a database file path")
        from gateway.store.sqlite import SqliteBackend

        return Database(SqliteBackend(path), "sqlite")
    if kind == "postgres":
        from gateway.store.postgres import PgParams, PostgresBackend

        return Database(PostgresBackend(params or PgParams()), "postgres")
    raise ValueError(f"unknown database kind '{kind}' (accepted: sqlite, postgres, off)")


def open_store(settings: Any, *, watch: bool = False, say: Callable[[str, str], None] | None = None) -> Database:
    """The store ``settings`` name. For postgres, the schema must be up to date (else ``StoreUnavailable`` with
    Kong's message naming the ``migrations`` command), and ``watch`` starts the thread that brings other nodes'
    writes to the subscribers (``say(level, message)`` reports losing and finding the database again)."""
    if settings.database != "postgres":
        return open_database(settings.database, settings.path(settings.sqlite_database))
    from gateway.store.migrations import start_refusal
    from gateway.store.pg_migrate import PgMigrations
    from gateway.store.pg_watch import ChangeWatcher
    from gateway.store.postgres import PgParams

    params = PgParams.from_settings(settings)
    refusal = start_refusal(PgMigrations(params).state())
    if refusal is not None:
        raise StoreUnavailable(refusal)
    db = open_database("postgres", params=params)
    if watch:
        db.watcher = ChangeWatcher(params, db.observe, settings.db_update_frequency, say, events=db.receive)
        db.watcher.start()
    return db
