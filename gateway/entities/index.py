"""One store export, indexed once per snapshot build: rows by id, by a unique field, by foreign key.

Every part of a snapshot build (balancers, upstream TLS, health-check TLS, the certificate index, the plugins)
reads the same export. Before this index each indexed what it needed itself - certificates by id three times,
routes by service, targets by upstream - and unwrapped foreign keys (``{"id": ...}``) in a dozen places. Now the
build makes one ``ConfigIndex`` and hands it to all of them; each index is computed on first use and kept, and
``foreign_id`` is the one place a foreign reference is unwrapped.

A ``ConfigIndex`` is also the ``Mapping`` it wraps (entity name -> rows), so code written against a plain export
(``config.get("routes", [])``) reads it unchanged; ``index_of`` wraps a plain export when a caller has no index.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

__all__ = ["ConfigIndex", "Row", "foreign_id", "index_of"]

Row = Mapping[str, Any]


def foreign_id(ref: Any) -> str | None:
    """The id of a foreign key as rows carry it: ``{"id": ...}`` from the store, a bare id from older callers."""
    if ref is None:
        return None
    if isinstance(ref, Mapping):
        value = ref.get("id")
        return str(value) if value is not None else None
    return str(ref)


class ConfigIndex(Mapping[str, Sequence[Row]]):
    """The rows of one configuration (entity name -> rows), with indexes built on first use."""

    __slots__ = ("_by_field", "_by_id", "_children", "_config")

    def __init__(self, config: Mapping[str, Sequence[Row]]) -> None:
        self._config = config
        self._by_id: dict[str, dict[str, Row]] = {}
        self._by_field: dict[tuple[str, str], dict[str, Row]] = {}
        self._children: dict[tuple[str, str], dict[str, list[Row]]] = {}

    # -- the Mapping it wraps ---------------------------------------------------------------------------------
    def __getitem__(self, entity: str) -> Sequence[Row]:
        return self._config[entity]

    def __iter__(self) -> Iterator[str]:
        return iter(self._config)

    def __len__(self) -> int:
        return len(self._config)

    def rows(self, entity: str) -> Sequence[Row]:
        """Every row of ``entity`` (none when the export has no such list)."""
        return self._config.get(entity) or ()

    # -- indexes ----------------------------------------------------------------------------------------------
    def by_id(self, entity: str) -> Mapping[str, Row]:
        """``entity``'s rows by id (rows without one are left out)."""
        found = self._by_id.get(entity)
        if found is None:
            found = self._by_id[entity] = {
                str(row["id"]): row for row in self.rows(entity) if row.get("id") is not None
            }
        return found

    def by_field(self, entity: str, field: str) -> Mapping[str, Row]:
        """``entity``'s rows by the text value of a unique field (``name``, ``username``...), where they have one."""
        key = (entity, field)
        found = self._by_field.get(key)
        if found is None:
            found = self._by_field[key] = {
                row[field]: row for row in self.rows(entity) if isinstance(row.get(field), str)
            }
        return found

    def children(self, entity: str, field: str) -> Mapping[str, Sequence[Row]]:
        """``entity``'s rows grouped by the id their foreign key ``field`` references, in export order."""
        key = (entity, field)
        found = self._children.get(key)
        if found is None:
            found = {}
            for row in self.rows(entity):
                parent = foreign_id(row.get(field))
                if parent is not None:
                    found.setdefault(parent, []).append(row)
            self._children[key] = found
        return found


def index_of(config: Mapping[str, Sequence[Row]]) -> ConfigIndex:
    """``config`` itself when it is an index already, else a new index over it."""
    return config if isinstance(config, ConfigIndex) else ConfigIndex(config)
