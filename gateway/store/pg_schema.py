"""The PostgreSQL schema and its migrations: the same tables as SQLite's (``sqlite.py``), in PostgreSQL's words.

Tables (generated from the entity schemas): ``id TEXT COLLATE "C" PRIMARY KEY`` (byte order, so that pagination
walks ids in the same order as SQLite whatever the database's collation), ``row TEXT`` (the complete row as JSON,
decoded exactly as SQLite's), ``u_<field>`` UNIQUE per unique field, ``cache_key`` UNIQUE for composite uniqueness,
and ``fk_<field>`` per foreign key, indexed and declared ``REFERENCES <parent>(id) DEFERRABLE INITIALLY DEFERRED``.
The DAOs check every rule first (for Kong's error messages); the database's constraints are the second line,
checked at commit, so a row that would break them can never be committed by any node.

Unlike SQLite, the schema is not created by ``gateway start``: ``gateway migrations bootstrap`` creates it (Kong's
``kong migrations bootstrap``), and ``start`` refuses a database that needs it. ``MIGRATIONS`` is append-only, each
entry named as ``migrations list`` prints it; ``schema_migrations`` records the ones applied.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.entities import SCHEMAS
from gateway.entities.schema import Schema
from gateway.store.backend import index_columns
from gateway.store.sql import column_name, quote_identifier

__all__ = ["MIGRATIONS", "TABLES", "Migration", "column_name", "create_entity_table", "qi"]


#: a quoted identifier (``store/sql``, shared with SQLite)
qi = quote_identifier


def create_entity_table(cur: Any, schema: Schema) -> None:
    """The table of one entity, with its index columns and constraints (see the module docstring)."""
    cols = ['id TEXT COLLATE "C" PRIMARY KEY NOT NULL', "row TEXT NOT NULL"]
    indexes: list[str] = []
    references = dict((name, f.reference) for name, f in schema.foreign_fields)
    for column in index_columns(schema, {}, None):
        name = column_name(column)
        if column.startswith("fk:"):
            parent = references.get(column[3:])
            ref = f" REFERENCES {qi(parent)} (id) DEFERRABLE INITIALLY DEFERRED" if parent else ""
            cols.append(f"{qi(name)} TEXT{ref}")
            indexes.append(f"CREATE INDEX {qi(schema.name + '_' + name)} ON {qi(schema.name)} ({qi(name)})")
        else:
            cols.append(f"{qi(name)} TEXT UNIQUE")
    cur.execute(f"CREATE TABLE {qi(schema.name)} ({', '.join(cols)})")
    for statement in indexes:
        cur.execute(statement)


_LATER_ENTITIES = frozenset({"acls"})


def _base(cur: Any) -> None:
    cur.execute("CREATE TABLE schema_meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL)")
    cur.execute("INSERT INTO schema_meta (key, value) VALUES ('version', '0')")
    for schema in SCHEMAS.values():  # dependency order: a parent's table exists before its children reference it
        if schema.name not in _LATER_ENTITIES:
            create_entity_table(cur, schema)


def _acls(cur: Any) -> None:
    create_entity_table(cur, SCHEMAS["acls"])


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema change, run inside the migrating transaction; never edit a released one."""

    name: str
    apply: Callable[[Any], None]


MIGRATIONS: tuple[Migration, ...] = (
    Migration("000_base", _base),
    Migration("001_acls", _acls),
)

TABLES: tuple[str, ...] = ("schema_migrations", "schema_meta", *reversed(list(SCHEMAS)))
"""Every table the migrations create, children first (the order ``migrations reset`` drops them in)."""
