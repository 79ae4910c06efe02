"""The one small interface between the configuration layer and its users (Admin API, runtime, CLI).

Rows are plain dicts in Kong's JSON shape, exactly what the Admin API returns:
foreign keys are ``{"id": "<uuid>"}`` (or ``None``), timestamps are integer seconds, absent optional
fields are ``None`` (JSON ``null``), sets/arrays are lists. Certificates carry their transient ``snis`` list
(sorted) when read through the ``certificates`` DAO.

All methods are synchronous and may block briefly (SQLite, or a round trip to PostgreSQL). Async callers run them
on the store's single worker thread (``Database.run``), so the event loop never blocks and writes are serialised.

Every write is one transaction: it either commits completely or raises ``EntityError`` and changes nothing.
After each commit, subscribers are called with the new version number; with PostgreSQL, also after a commit of
another node sharing the database (``pg_watch.py``), so a subscriber sees every node's writes alike.

Entity names: ``services, routes, consumers, plugins, upstreams, targets, certificates, snis,
ca_certificates, mtls_auth_credentials, acls`` (the Admin API path segment of each collection).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

__all__ = ["Config", "EntityDAO", "Row", "Store"]

T = TypeVar("T")

Row = dict[str, Any]
Config = dict[str, list[Row]]  # entity name -> every row, the input of a runtime snapshot


class EntityDAO(Protocol):
    """CRUD for one entity, with Kong's validation, defaults, uniqueness and foreign-key rules."""

    name: str

    def select(self, key: str) -> Row | None:
        """By primary key (uuid) or, when the string is not a uuid, by the entity's endpoint key."""

    def insert(self, data: Mapping[str, Any]) -> Row:
        """Validate, fill defaults, ``id``/``created_at``/``updated_at``, check unique/foreign keys, store."""

    def update(self, key: str, patch: Mapping[str, Any]) -> Row:
        """PATCH semantics: merge, revalidate the whole row. Raises ``NotFound`` when the key is unknown."""

    def upsert(self, key: str, data: Mapping[str, Any]) -> Row:
        """PUT semantics: replace (keeping ``id``/``created_at``) or create with that id / endpoint key."""

    def delete(self, key: str) -> bool:
        """Delete with Kong's cascades/refusals. Returns False when nothing matched."""

    def page(
        self, size: int = 100, offset: str | None = None, filters: Mapping[str, Any] | None = None
    ) -> tuple[list[Row], str | None]:
        """One page in a stable order, and the opaque offset token of the next page (None on the last).

        ``filters`` restricts to rows whose foreign key matches, e.g. ``{"service": "<uuid>"}`` for
        ``/services/{id}/routes``, or ``{"tags": [...]}``.
        """

    def all(self) -> list[Row]:
        """Every row of the entity in a stable order (the export, and start-up checks over a whole table)."""


class Store(Protocol):
    """The store: one object per process, SQLite-, PostgreSQL- or memory-backed (``gateway.store.database.Database``).

    The one contract its users rely on: the Admin API (every call inside ``run``), the runtime (``export``,
    ``subscribe``, ``run``, ``version``, ``dao(...).all()`` for its start-up checks and metrics) and the CLI.
    Every store object satisfies it (``tests/unit/store/test_interface.py`` holds the SQLite and the memory
    ``Database`` to it).
    """

    version: int

    def dao(self, entity: str) -> EntityDAO: ...

    def export(self) -> Config:
        """Every row of every entity, for building a runtime snapshot or ``GET /config``."""

    def replace_all(self, declarative: Mapping[str, Any]) -> None:
        """Validate a whole declarative config (kong.yml dict) and swap it in atomically, or raise."""

    def select_target(self, upstream: str, key: str) -> Row | None:
        """A target of ``upstream`` (id or name) by its id or its ``host:port`` (Kong's default port applied)."""

    def ping(self) -> None:
        """Raise when the store cannot answer now (a database server down): ``GET /status``'s ``reachable``."""

    def broadcast(self, event: str, data: Mapping[str, Any]) -> None:
        """Send an event to the other nodes sharing the store (health forced through the Admin API)."""

    def on_event(self, callback: Callable[[str, dict[str, Any]], None]) -> None:
        """Call ``callback(event, data)`` for each event another node broadcast (from a store thread)."""

    def subscribe(self, callback: Callable[[int], None]) -> None:
        """Call ``callback(version)`` after every committed change (from the writing thread)."""

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the store's single worker thread (the event loop never blocks, writes are serialised)."""

    def close(self) -> None: ...
