"""What start-up reads before it serves: the store (memory with the declarative file, PostgreSQL or SQLite), and the
words for what cannot start. Kept apart from ``lifecycle`` so the process's life and the store's opening each fit in
one screen of reading; ``lifecycle`` re-exports ``StartupError`` and ``load_declarative_file``."""

from __future__ import annotations

from gateway.entities.plugin_configs import registered_plugins, runs_note
from gateway.observability.errorlog import ErrorLog
from gateway.settings import Settings
from gateway.store import StoreUnavailable, open_database, open_store
from gateway.store.declarative import parse_text
from gateway.store.interface import Row, Store

__all__ = [
    "StartupError",
    "format_entity_error",
    "load_declarative_file",
    "open_gateway_store",
    "stored_plugins_message",
]


class StartupError(RuntimeError):
    """The gateway cannot start; the message says why and is printed as is."""


def load_declarative_file(path: str) -> dict[str, object]:
    """Read a kong.yml (YAML or JSON, JSON being YAML) into a dict, or raise ``StartupError``."""
    try:
        with open(path, encoding="utf-8") as handle:
            return parse_text(handle)
    except OSError as exc:
        raise StartupError(f"failed loading declarative config file {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise StartupError(str(exc)) from None


def stored_plugins_message(rows: list[Row], settings: Settings) -> str:
    """Kong's message, then every offending row (name, id, scope) and what to do about it."""
    lines = [
        f"error building initial plugins: {rows[0].get('name')} plugin is in use but not enabled ({runs_note()})",
    ]
    where = {
        "sqlite": f"the database {settings.path(settings.sqlite_database)}",
        "postgres": f"the database {settings.pg_database} on {settings.pg_host}:{settings.pg_port}",
    }.get(settings.database, "the declarative configuration")
    lines.append(f"{where} holds {len(rows)} plugin(s) that would never run:")
    for row in rows:
        scope = [f"{fk} {row[fk]['id']}" for fk in ("route", "service", "consumer") if isinstance(row.get(fk), dict)]
        lines.append(f"  {row.get('name')} (id {row.get('id')}, {', '.join(scope) or 'global'})")
    ids = ", ".join(f"'{row.get('id')}'" for row in rows)
    statement = f"DELETE FROM plugins WHERE id IN ({ids})"
    if settings.database == "sqlite":
        lines.append(f'delete them, then start again: sqlite3 {settings.path(settings.sqlite_database)} "{statement}"')
    elif settings.database == "postgres":
        lines.append(f"delete them (Admin API DELETE /plugins/{{id}} on a node, or SQL: {statement}), then start again")
    runnable = sorted({str(row.get("name")) for row in rows} & set(registered_plugins()))
    if runnable:
        now = ", ".join(settings.plugins) or "off"
        lines.append(f"or enable {', '.join(runnable)} in the 'plugins' setting (now: {now})")
    return "\n".join(lines)


def format_entity_error(exc: Exception) -> str:
    """An entity error's own message (``EntityError.message``) rather than its repr, for start-up and reload lines."""
    message = getattr(exc, "message", None) or str(exc)
    return str(message)


def open_gateway_store(settings: Settings, error_log: ErrorLog) -> Store:
    """The store ``start`` serves from: the declarative file in memory (``database = off``), PostgreSQL, or the
    SQLite file; a failure is a ``StartupError`` naming what could not be opened."""
    if settings.database == "off":
        db = open_database("off", None)
        if settings.declarative_config:
            data = load_declarative_file(settings.declarative_config)
            try:
                db.replace_all(data)
            except Exception as exc:
                raise StartupError(
                    f"failed loading declarative config file {settings.declarative_config}: {format_entity_error(exc)}"
                ) from exc
        return db
    if settings.database == "postgres":
        try:
            return open_store(settings, watch=True, say=error_log.log)
        except StoreUnavailable as exc:
            raise StartupError(str(exc)) from None
    path = settings.path(settings.sqlite_database)
    try:
        return open_database("sqlite", path)
    except Exception as exc:
        raise StartupError(f"cannot open the database {path}: {exc}") from exc
