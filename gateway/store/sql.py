"""The SQL both relational backends write alike (SQLite's ``?`` and PostgreSQL's ``%s`` placeholders aside): quoted
identifiers, index column names, and the one scan query the Admin API's pagination and the exports use."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["column_name", "quote_identifier", "scan_query"]


def quote_identifier(identifier: str) -> str:
    """A quoted identifier (entity and column names come from the schemas, quoted all the same)."""
    return '"' + identifier.replace('"', '""') + '"'


def column_name(index_column: str) -> str:
    """``u:name`` -> ``u_name``, ``fk:service`` -> ``fk_service``, ``cache_key`` unchanged."""
    return index_column.replace(":", "_")


def scan_query(
    entity: str, after: str | None, limit: int | None, where: Mapping[str, str] | None, mark: str
) -> tuple[str, list[object]]:
    """``SELECT row`` of ``entity`` in id order, after an id, filtered by index columns, limited; ``mark`` is the
    driver's placeholder (``?`` or ``%s``)."""
    clauses: list[str] = []
    args: list[object] = []
    if after is not None:
        clauses.append(f"id > {mark}")
        args.append(after)
    for column, value in (where or {}).items():
        clauses.append(f"{quote_identifier(column_name(column))} = {mark}")
        args.append(value)
    query = f"SELECT row FROM {quote_identifier(entity)}"
    if clauses:
        query += " WHERE " + " AND ".join(clauses)
    query += " ORDER BY id"
    if limit is not None:
        query += f" LIMIT {mark}"
        args.append(limit)
    return query, args
