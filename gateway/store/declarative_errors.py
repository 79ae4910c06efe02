"""The items of a kong.yml as the loader sees them, and their errors in Kong's three renderings.

An ``Item`` is one entity occurrence in the file: where it sits, its data, its nested items and its own errors.
``slot_errors`` builds Kong's nested error table, ``flattened`` Kong's ``flattened_errors``, and ``path_lines``
one ``services[0].routes[1].paths[0]: ...`` line per error (``DeclarativeConfigError`` carries all three).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.entities.values import is_uuid

__all__ = ["Item", "categorize", "flattened", "path_lines", "singular", "slot_errors"]

Row = dict[str, Any]


@dataclass
class Item:
    """One entity occurrence in the file, with where it was found and its own errors."""

    entity: str
    data: dict[str, Any]
    original: dict[str, Any]
    path: str
    parent: Item | None
    child_key: str | None
    errors: dict[str, Any] = field(default_factory=dict)
    children: dict[str, list[Any]] = field(default_factory=dict)
    row: Row | None = None

    def add_entity_error(self, message: str) -> None:
        self.errors.setdefault("@entity", []).append(message)


def singular(name: str) -> str:
    """Kong's entity type of a collection name (``services`` -> ``service``)."""
    return name[:-1] if name.endswith("s") else name


def slot_errors(slot: Any) -> Any:
    """The nested error table of one slot (an ``Item`` or a plain message), or None when clean."""
    if not isinstance(slot, Item):
        return slot
    out: dict[str, Any] = dict(slot.errors)
    for child, child_slots in slot.children.items():
        errs = [slot_errors(s) for s in child_slots]
        if any(e is not None for e in errs):
            while errs and errs[-1] is None:
                errs.pop()
            out[child] = errs
    return out or None


def path_lines(prefix: str, errors: Any, out: list[str]) -> None:
    """One ``services[0].routes[1].paths[0]: <message>`` line per error of a nested error table."""
    if isinstance(errors, Mapping):
        for key in sorted(errors, key=lambda k: (k != "@entity", str(k))):
            value = errors[key]
            if key == "@entity":
                for msg in value:
                    out.append(f"{prefix}: {msg}")
            else:
                path_lines(f"{prefix}.{key}" if prefix else str(key), value, out)
    elif isinstance(errors, list):
        for i, value in enumerate(errors):
            if value is not None:
                path_lines(f"{prefix}[{i}]", value, out)
    else:
        out.append(f"{prefix}: {errors}")


def categorize(errors: Mapping[str, Any], ns: str, out: list[dict[str, Any]]) -> None:
    """Kong's ``categorize_errors``: entity and field messages, nested fields joined with dots (1-based)."""
    for key in sorted(errors, key=str):
        value = errors[key]
        name = f"{ns}.{key}" if ns else str(key)
        if key == "@entity" and not ns:
            out.extend({"type": "entity", "message": m} for m in value)
        elif isinstance(value, Mapping):
            categorize(value, name, out)
        elif isinstance(value, list):
            categorize({str(i): v for i, v in enumerate(value, 1) if v is not None}, name, out)
        else:
            out.append({"type": "field", "field": name, "message": value})


def flattened(items: list[Item]) -> list[dict[str, Any]]:
    """Kong's ``flattened_errors``: one entry per item with errors, naming the entity and its fields' messages."""
    out: list[dict[str, Any]] = []
    for item in items:
        if not item.errors:
            continue
        entries: list[dict[str, Any]] = []
        categorize(item.errors, "", entries)
        entity = dict(item.original)
        if item.child_key is not None and item.parent is not None:
            entity.setdefault(item.child_key, {"id": item.parent.data["id"]})
        name = item.original.get("name")
        tags = item.original.get("tags")
        out.append(
            {
                "entity_type": singular(item.entity),
                "entity_id": item.data["id"] if is_uuid(item.data.get("id")) else None,
                "entity_name": name if isinstance(name, str) and name else None,
                "entity_tags": tags if isinstance(tags, list) and all(isinstance(t, str) for t in tags) else None,
                "entity": entity,
                "errors": entries,
            }
        )
    return out
