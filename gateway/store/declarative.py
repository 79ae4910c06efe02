"""Declarative configuration (kong.yml): load and validate a whole config, and dump the store as one.

``load(config)`` turns a kong.yml dict into complete rows per entity, or raises one
``DeclarativeConfigError`` that lists every problem (Kong's nested error table, Kong's
``flattened_errors``, and one ``services[0].routes[1].paths[0]: ...`` line per error). Nothing is
written: ``Database.replace_all`` calls it and then swaps the rows in within one transaction.

Accepted shapes (Kong's ``declarative_config.lua``):

- ``_format_version`` (required: ``"1.1"``, ``"2.1"`` or ``"3.0"``), ``_transform``, ``_comment``,
  ``_ignore``, then one list per entity at top level.
- Nesting: an item may carry a list of any entity that has a foreign key to it (``services[].routes[]``,
  ``services[].plugins[]``, ``routes[].plugins[]``, ``consumers[].plugins[]``,
  ``consumers[].mtls_auth_credentials[]``, ``consumers[].acls[]``, ``upstreams[].targets[]``,
  ``certificates[].snis[]`` with objects ``{name: ...}``); the nested item's foreign key is filled from its parent.
- Foreign keys are plain strings (an id, or the endpoint key: a service name, a consumer username...)
  or ``{id: ...}``.
- Missing ids are generated as Kong does: a UUIDv5 in the namespace of the entity name (itself a UUIDv5
  of ``fd02801f-0957-4a15-a55a-c8d9606f30b5``), named after the cache key (plugins, targets, acls) or the
  endpoint key (services, routes and consumers with a name/username, upstreams, snis); other entities
  (certificates, ca_certificates, unnamed routes...) get a random UUIDv4. So a name-keyed entity keeps
  its id across reloads of the same file.
"""

from __future__ import annotations

import copy
import math
import time
import uuid
from collections.abc import Mapping
from typing import Any

import yaml

from gateway.entities import SCHEMAS
from gateway.entities import ca_certificates as ca_entity
from gateway.entities import targets as targets_entity
from gateway.entities.errors import DeclarativeConfigError, EntityError
from gateway.entities.schema import Schema
from gateway.entities.values import is_uuid
from gateway.store.declarative_errors import Item, flattened, path_lines, slot_errors
from gateway.store.interface import Store

__all__ = [
    "FORMAT_VERSIONS",
    "MAX_NESTING",
    "MAX_VALUES",
    "check_document",
    "dump",
    "generate_id",
    "load",
    "parse_text",
]

MAX_NESTING = 100
"""The deepest document accepted (a JSON or YAML body, a kong.yml, form arguments). Everything after parsing
(validation, JSON and YAML encoding) recurses once or more per level on Python's bounded stack, so a deeper
document would end as a ``RecursionError``; Kong's bound is cjson's 1000 levels. Real configurations nest about a
dozen levels."""
MAX_VALUES = 1_000_000
"""The most values a parsed document may hold once its YAML aliases are expanded (or one per character of its text,
which no document can exceed without aliases): a few hundred bytes of nested aliases otherwise expand to billions."""

FORMAT_VERSIONS = ("1.1", "2.1", "3.0")
_NAMESPACE = uuid.UUID("fd02801f-0957-4a15-a55a-c8d9606f30b5")
_META_FIELDS = {"_format_version", "_transform", "_comment", "_ignore", "_workspace"}

Row = dict[str, Any]


def generate_id(entity: str, key: str) -> str:
    """Kong's deterministic id: ``uuid5(uuid5(NS, entity), key)``."""
    return str(uuid.uuid5(uuid.uuid5(_NAMESPACE, entity), key))


# ------------------------------------------------------------------------------------------ relations
def _nesting() -> dict[str, dict[str, str]]:
    """``parent entity -> {child entity: child's foreign key field}`` for every foreign key."""
    out: dict[str, dict[str, str]] = {name: {} for name in SCHEMAS}
    for name, schema in SCHEMAS.items():
        for fname, f in schema.foreign_fields:
            if f.reference in out:
                out[f.reference].setdefault(name, fname)
    return out


_CHILDREN = _nesting()


# ------------------------------------------------------------------------------------------ id keys
def _cache_key(item: Item, schema: Schema) -> str | None:
    """Kong's ``build_cache_key`` (best effort; None when a part is unknown)."""
    parts = [item.entity, "*"]
    for k in schema.cache_key:
        f = schema.get_field(k)
        value = item.data.get(k)
        if f is not None and f.auto:
            return None
        if isinstance(value, str):
            parts.append(value)
        elif value is None:
            if k == item.child_key and item.parent is not None:
                parts.append(item.parent.data["id"])
            elif f is not None and f.required:
                return None
            else:
                parts.append("")
    return ":".join(parts)


def _assign_id(item: Item) -> None:
    data = item.data
    if data.get("id") is not None:
        return
    schema = SCHEMAS[item.entity]
    key: str | None = None
    if schema.cache_key:
        key = _cache_key(item, schema)
    elif schema.endpoint_key and isinstance(data.get(schema.endpoint_key), str):
        key = data[schema.endpoint_key]
    data["id"] = generate_id(item.entity, key) if key is not None else str(uuid.uuid4())


# ------------------------------------------------------------------------------------------ collection
def _collect(entity: str, value: Any, path: str, parent: Item | None, items: list[Item]) -> list[Any]:
    """Flatten one entity list (and its nested children) into ``items``; returns its error slots."""
    if not isinstance(value, list):
        return ["expected an array"]
    slots: list[Any] = []
    child_key = _CHILDREN[parent.entity].get(entity) if parent is not None else None
    schema = SCHEMAS[entity]
    for i, raw in enumerate(value):
        here = f"{path}[{i}]"
        if not isinstance(raw, Mapping):
            slots.append("expected a record")
            continue
        data = copy.deepcopy(dict(raw))
        item = Item(entity, data, copy.deepcopy(dict(raw)), here, parent, child_key)
        nested: dict[str, Any] = {}
        for child in _CHILDREN[entity]:
            f = schema.get_field(child)
            if child in data and (f is None or f.transient):
                nested[child] = data.pop(child)
                item.original.pop(child, None)
        _assign_id(item)  # before the parent key is filled in: Kong hashes the raw nested item
        if parent is not None and child_key is not None:
            data[child_key] = {"id": parent.data["id"]}
        items.append(item)
        slots.append(item)
        for child, child_value in nested.items():
            item.children[child] = _collect(child, child_value, f"{here}.{child}", item, items)
    return slots


# ------------------------------------------------------------------------------------------ validation
def _index(items: list[Item]) -> tuple[dict[str, dict[str, Item]], dict[str, dict[str, Item]]]:
    by_id: dict[str, dict[str, Item]] = {name: {} for name in SCHEMAS}
    by_key: dict[str, dict[str, Item]] = {name: {} for name in SCHEMAS}
    for item in items:
        schema = SCHEMAS[item.entity]
        ek = schema.endpoint_key
        failed = False
        if ek is not None:
            ek_field = schema.get_field(ek)
            key = item.data.get(ek)
            if ek_field is not None and ek_field.unique and isinstance(key, str):
                if key in by_key[item.entity]:
                    item.add_entity_error(
                        f"uniqueness violation: '{item.entity}' entity with {ek} set to '{key}' already declared"
                    )
                    failed = True
                else:
                    by_key[item.entity][key] = item
        item_id = str(item.data.get("id"))
        if item_id in by_id[item.entity]:
            if not failed:
                item.add_entity_error(
                    f"uniqueness violation: '{item.entity}' entity with primary key set to '{item_id}' already declared"
                )
        else:
            by_id[item.entity][item_id] = item
    return by_id, by_key


def _resolve_references(item: Item, by_id: dict[str, dict[str, Item]], by_key: dict[str, dict[str, Item]]) -> None:
    schema = SCHEMAS[item.entity]
    for fname, f in schema.foreign_fields:
        value = item.data.get(fname)
        if value is None or f.reference is None:
            continue
        key = value.get("id") if isinstance(value, Mapping) else value
        if not isinstance(key, str):
            continue
        found = by_key[f.reference].get(key) or by_id[f.reference].get(key)
        if found is None:
            shown = key if isinstance(value, str) else str(value)
            item.add_entity_error(f"invalid reference '{fname}: {shown}' (no such entry in '{f.reference}')")
            item.data[fname] = {"id": key} if is_uuid(key) else None
            continue
        item.data[fname] = {"id": found.data["id"]}


def _validate_item(item: Item, now: float) -> None:
    schema = SCHEMAS[item.entity]
    data = dict(item.data)
    if item.entity == "targets" and isinstance(data.get("target"), str) and data["target"]:
        formatted, err = targets_entity.format_target(data["target"])
        if formatted is None:
            item.errors["target"] = err
            return
        data["target"] = formatted
    try:
        row = schema.process_auto_fields(data, "insert", now)
    except EntityError as exc:
        item.errors.update(exc.fields or {})
        return
    errors = schema.validate(row)
    if errors:
        for key, value in errors.items():
            if key == "@entity":
                item.errors.setdefault("@entity", []).extend(value)
            else:
                item.errors[key] = value
        return
    if item.entity == "ca_certificates":
        ca_entity.compute_digest(row)
    item.row = schema.complete(row)


def _composite(item: Item, schema: Schema) -> tuple[tuple[str, Any], ...]:
    """The ``cache_key`` fields of a validated row, foreign keys as their ids (the store's composite uniqueness)."""
    assert item.row is not None
    values = ((name, item.row.get(name)) for name in schema.cache_key)
    return tuple((name, value.get("id") if isinstance(value, Mapping) else value) for name, value in values)


def _composite_message(entity: str, key: tuple[tuple[str, Any], ...]) -> str:
    shown = " and ".join(
        f"{name} set to '{value}'" if value is not None else f"{name} set to null" for name, value in key
    )
    return f"uniqueness violation: '{entity}' entity with {shown} already declared"


def _check_uniques(items: list[Item]) -> None:
    """Unique fields, and the composite ``cache_key`` (a consumer's group, an upstream's target) that ids given in the
    file could otherwise repeat: the store would refuse such rows at write time."""
    seen: dict[tuple[str, str, str], Item] = {}
    composites: set[tuple[str, tuple[tuple[str, Any], ...]]] = set()
    for item in items:
        if item.row is None:
            continue
        schema = SCHEMAS[item.entity]
        if schema.cache_key:
            composite = (item.entity, _composite(item, schema))
            if composite in composites:
                item.add_entity_error(_composite_message(item.entity, composite[1]))
            composites.add(composite)
        for name in schema.unique_fields:
            if name == schema.endpoint_key:
                continue  # already reported by _index
            value = item.row.get(name)
            if value is None:
                continue
            k = (item.entity, name, str(value))
            if k in seen:
                item.add_entity_error(
                    f"uniqueness violation: '{item.entity}' entity with {name} set to '{value}' already declared"
                )
            else:
                seen[k] = item


# ------------------------------------------------------------------------------------------ public
def _check_top(config: Any) -> dict[str, Any]:
    if not isinstance(config, Mapping):
        return {"@entity": ["expected a declarative configuration"]}
    errors: dict[str, Any] = {}
    version = config.get("_format_version")
    if version is None:
        errors["_format_version"] = "required field missing"
    elif not isinstance(version, str):
        errors["_format_version"] = "expected a string"
    elif version not in FORMAT_VERSIONS:
        errors["_format_version"] = "expected one of: " + ", ".join(FORMAT_VERSIONS)
    if "_transform" in config and not isinstance(config["_transform"], bool):
        errors["_transform"] = "expected a boolean"
    for key in config:
        if key not in _META_FIELDS and key not in SCHEMAS:
            errors[key] = "unknown field"
    return errors


_SafeLoader: Any = yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader


class _Loader(_SafeLoader):
    """YAML as lyaml reads it for Kong: with libyaml when PyYAML has it (Kong's lyaml binds libyaml too; it is also
    many times faster and bounds the nesting itself), and plain scalars that look like dates stay strings (lyaml
    has no timestamp type, and a ``date`` could not be stored as JSON)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}

_JSON_SCALARS = (str, int, float, bool, type(None))


def check_document(value: Any, budget: int = MAX_VALUES) -> str | None:
    """Why a parsed document cannot be used (too deep, too many values, a value JSON cannot carry), or None.

    Iterative, so that it is safe on any depth; aliases are counted each time they are reached.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    seen = 0
    while stack:
        item, depth = stack.pop()
        seen += 1
        if seen > budget:
            return f"the document expands to more than {budget} values (YAML aliases?)"
        if isinstance(item, dict):
            if depth > MAX_NESTING:
                return f"the document is nested more than {MAX_NESTING} levels deep"
            for key, child in item.items():
                if not isinstance(key, _JSON_SCALARS) or (isinstance(key, float) and not math.isfinite(key)):
                    return f"unsupported key of type {type(key).__name__}"
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            if depth > MAX_NESTING:
                return f"the document is nested more than {MAX_NESTING} levels deep"
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, float):
            if not math.isfinite(item):
                return f"unsupported number {item}"
        elif not isinstance(item, _JSON_SCALARS):
            return f"unsupported value of type {type(item).__name__}"
    return None


def parse_text(text: Any) -> dict[str, Any]:
    """Kong's ``dc:unserialize``: YAML text (JSON being YAML), or an open file, that must hold a mapping.

    The document must also pass ``check_document`` (bounded depth and size, JSON values only).

    Raises:
        ValueError: with Kong's ``failed parsing declarative configuration: ...`` wording; callers wrap it in
        their own error (the Admin API's code 14, the CLI's start-up error).
    """
    try:
        value = yaml.load(text, Loader=_Loader)  # a safe loader
    except yaml.YAMLError as exc:
        raise ValueError(f"failed parsing declarative configuration: {exc}") from None
    except RecursionError:
        raise ValueError(
            f"failed parsing declarative configuration: the document is nested more than {MAX_NESTING} levels deep"
        ) from None
    if not isinstance(value, dict):
        raise ValueError("failed parsing declarative configuration: expected an object")
    size = len(text) if isinstance(text, str) else 0
    problem = check_document(value, max(MAX_VALUES, size + 1))
    if problem is not None:
        raise ValueError(f"failed parsing declarative configuration: {problem}")
    return value


def load(config: Any, now: float | None = None) -> dict[str, list[Row]]:
    """Validate a kong.yml dict and return complete rows per entity (dependency order), or raise.

    Raises ``DeclarativeConfigError`` listing every error found.
    """
    top = _check_top(config)
    if top:
        lines: list[str] = []
        path_lines("", top, lines)
        raise DeclarativeConfigError(top, [], lines)
    stamp = time.time() if now is None else now
    items: list[Item] = []
    slots: dict[str, list[Any]] = {}
    for entity in SCHEMAS:
        if entity in config and config[entity] is not None:
            slots[entity] = _collect(entity, config[entity], entity, None, items)
    by_id, by_key = _index(items)
    for item in items:
        _resolve_references(item, by_id, by_key)
    for item in items:
        if not item.errors:
            _validate_item(item, stamp)
    _check_uniques(items)

    errors: dict[str, Any] = {}
    for entity, entity_slots in slots.items():
        if entity_slots == ["expected an array"]:
            errors[entity] = "expected an array"
            continue
        errs = [slot_errors(s) for s in entity_slots]
        if any(e is not None for e in errs):
            while errs and errs[-1] is None:
                errs.pop()
            errors[entity] = errs
    if errors:
        lines = []
        path_lines("", errors, lines)
        raise DeclarativeConfigError(errors, flattened(items), lines)

    rows: dict[str, list[Row]] = {entity: [] for entity in SCHEMAS}
    for item in items:
        assert item.row is not None
        rows[item.entity].append(item.row)
    return rows


def dump(database: Store) -> dict[str, Any]:
    """The store as a ``_format_version: "3.0"`` declarative dict (flat, foreign keys as id strings).

    ``load(dump(db))`` reproduces the same rows (ids included; ``updated_at`` is refreshed on load).
    """
    exported = database.export()
    out: dict[str, Any] = {"_format_version": "3.0", "_transform": False}
    for entity, rows in exported.items():
        schema = SCHEMAS[entity]
        items = []
        for row in rows:
            item: dict[str, Any] = {}
            for name, f in schema.fields:
                value = row.get(name)
                if f.transient or value is None:
                    continue
                if f.type == "foreign" and isinstance(value, Mapping):
                    value = value.get("id")
                item[name] = value
            items.append(item)
        if items:
            out[entity] = items
    return out
