"""Persistence of the configuration: ``open_database`` returns the process's ``Database``.

``kind`` is ``sqlite`` (the embedded default: a real database file at ``path``) or ``off`` (DB-less: in
memory, filled from a declarative configuration with ``Database.replace_all``). See ``interface.py`` for
the contract the Admin API and the runtime rely on (``Store``), ``dao.py`` and ``entity_daos.py`` for Kong's
write semantics and ``declarative.py`` for kong.yml.
"""

from __future__ import annotations

from gateway.entities import ENTITY_NAMES
from gateway.store.backend import StoreUnavailable
from gateway.store.database import Database
from gateway.store.memory import MemoryBackend

__all__ = ["Database", "StoreUnavailable", "open_database"]


def open_database(kind: str, path: str | None = None) -> Database:
    """Open the store: ``open_database("sqlite", "/prefix/gateway.db")`` or ``open_database("off")``.

    Raises ``ValueError`` for an unknown kind or a missing SQLite path.
    """
    if kind == "off":
        return Database(MemoryBackend(list(ENTITY_NAMES)), "off")
    if kind == "sqlite":
        if not path:
            raise ValueError("database = sqlite needs a database file path")
        from gateway.store.sqlite import SqliteBackend

        return Database(SqliteBackend(path), "sqlite")
    raise ValueError(f"unknown database kind '{kind}' (accepted: sqlite, off)")
