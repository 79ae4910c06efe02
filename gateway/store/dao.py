"""Kong's DAO semantics over a ``Backend``: one generic DAO, plus the entity-specific rules of ``kong/db/dao``.

Every public write opens (or joins) the database transaction and runs, in Kong's order:

    entity hooks (e.g. the SNI list checks) -> auto fields and defaults -> schema validation
    -> transformations (ca digest) -> primary key / unique / foreign key checks -> write -> children

Any ``EntityError`` raised on the way rolls the whole transaction back, so a rejected write changes
nothing, including the SNI rows of a certificate or the cascade of a delete.

Deletes follow the relations declared by the schemas: a child whose foreign key has
``on_delete="cascade"`` is deleted with its parent (recursively); any other reference makes the delete
fail with Kong's ``an existing '<child>' entity references this '<parent>' entity``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from gateway.entities import ca_certificates as ca_entity
from gateway.entities import targets as targets_entity
from gateway.entities.errors import (
    NotFound,
    foreign_key_restricted,
    foreign_key_violation,
    foreign_keys_unresolved,
    primary_key_violation,
    referenced_by_others,
    schema_violation,
    unique_violation,
)
from gateway.entities.plugin_configs import get_plugin
from gateway.entities.plugins import scope_key
from gateway.entities.schema import Schema
from gateway.entities.values import is_uuid
from gateway.store.backend import Row, dumps, index_columns
from gateway.store.pagination import DEFAULT_PAGE_SIZE, check_size, decode_offset, encode_offset

if TYPE_CHECKING:
    from gateway.store.database import Database

__all__ = ["DAO", "make_dao"]


def _merge(schema: Schema | None, top: Mapping[str, Any], bottom: Mapping[str, Any]) -> dict[str, Any]:
    """Kong's ``merge_values``: ``top`` wins; records present on both sides are merged field by field."""
    out = dict(bottom)
    for key, value in top.items():
        f = schema.get_field(key) if schema is not None else None
        below = bottom.get(key)
        if f is not None and f.type == "record" and isinstance(value, dict) and isinstance(below, dict):
            out[key] = _merge(f.record, value, below)
        else:
            out[key] = value
    return out


class DAO:
    """CRUD for one entity with Kong's validation, defaults, uniqueness and foreign-key rules."""

    def __init__(self, db: Database, schema: Schema) -> None:
        self.db = db
        self.schema = schema
        self.name = schema.name

    # ================================================================== reads
    def select(self, key: str) -> Row | None:
        """By id, or (when ``key`` is not a known id) by the endpoint key (e.g. a service name)."""
        with self.db.lock:
            row = self._lookup(key)
            return self._output(row) if row is not None else None

    def page(
        self, size: int = DEFAULT_PAGE_SIZE, offset: str | None = None, filters: Mapping[str, Any] | None = None
    ) -> tuple[list[Row], str | None]:
        """One page in id order and the token of the next page (None on the last page).

        ``filters``: a foreign-key field name mapped to an id (or ``{"id": ...}``), e.g.
        ``{"service": "<uuid>"}``; ``tags`` (a list: rows having every tag) with ``tags_mode="or"`` for
        rows having any of them.
        """
        size = check_size(size)
        after = decode_offset(offset) if offset is not None else None
        where: dict[str, str] = {}
        tags: list[str] | None = None
        mode = "and"
        for key, value in (filters or {}).items():
            if key == "tags":
                tags = [value] if isinstance(value, str) else list(value)
            elif key == "tags_mode":
                mode = str(value)
            else:
                where[f"fk:{key}"] = str(value.get("id") if isinstance(value, Mapping) else value)
        with self.db.lock:
            rows: list[Row] = []
            more = False
            cursor = after
            while True:
                batch = self.db.backend.scan(self.name, cursor, size + 1 if tags is None else 500, where)
                for row in batch:
                    if tags is not None and not _has_tags(row.get("tags"), tags, mode):
                        continue
                    if len(rows) == size:
                        more = True
                        break
                    rows.append(row)
                if more or tags is None or len(batch) < 500:
                    break
                cursor = batch[-1]["id"]
            out = self._output_many(rows)
        return out, (encode_offset(rows[-1]["id"]) if more and rows else None)

    def all(self) -> list[Row]:
        """Every row, in id order (for export)."""
        with self.db.lock:
            return self._output_many(self.db.backend.scan(self.name))

    # ================================================================== writes
    def insert(self, data: Mapping[str, Any]) -> Row:
        """POST semantics: a new entity with defaults, generated ``id`` and timestamps."""
        with self.db.transaction():
            return self._output(self._insert(dict(_require_mapping(data)), time.time()))

    def update(self, key: str, patch: Mapping[str, Any]) -> Row:
        """PATCH semantics: merge into the stored row and revalidate it. ``NotFound`` when ``key`` is unknown."""
        with self.db.transaction():
            existing = self._lookup(key)
            if existing is None:
                raise NotFound()
            return self._output(self._update(existing, dict(_require_mapping(patch)), time.time()))

    def upsert(self, key: str, data: Mapping[str, Any]) -> Row:
        """PUT semantics: replace the entity (keeping ``id``/``created_at``), or create it with that id or key."""
        with self.db.transaction():
            data = dict(_require_mapping(data))
            existing = self._lookup(key)
            if existing is None and not is_uuid(key):
                if self.schema.endpoint_key is None:
                    raise NotFound()
                data[self.schema.endpoint_key] = key
            elif existing is not None and self.schema.endpoint_key and not is_uuid(key):
                data[self.schema.endpoint_key] = key
            return self._output(self._upsert(key, existing, data, time.time()))

    def delete(self, key: str) -> bool:
        """Delete with Kong's cascades and refusals; False when nothing matched ``key``."""
        with self.db.transaction():
            existing = self._lookup(key)
            if existing is None:
                return False
            self._delete(existing)
            return True

    # ================================================================== internals (inside a transaction)
    def _lookup(self, key: str) -> Row | None:
        if not isinstance(key, str):
            return None
        backend = self.db.backend
        if is_uuid(key):
            row = backend.get(self.name, key)
            if row is not None:
                return row
        ek = self.schema.endpoint_key
        if ek is not None:
            f = self.schema.get_field(ek)
            if f is not None and f.unique:
                return backend.find(self.name, f"u:{ek}", key)
        return None

    def _output(self, row: Row) -> Row:
        return row

    def _output_many(self, rows: list[Row]) -> list[Row]:
        return [self._output(r) for r in rows]

    def _prepare(self, data: dict[str, Any], context: str) -> None:
        """Entity hook run on the raw input before auto fields (targets normalise ``target`` here)."""

    def _transform(self, row: dict[str, Any]) -> None:
        """Entity hook run after validation (ca_certificates compute ``cert_digest`` here)."""

    def _validated(self, row: dict[str, Any], full_check: bool, updating: bool) -> None:
        errors = self.schema.validate(row, full_check=full_check, updating=updating)
        if errors:
            raise schema_violation(errors)

    def _resolve_foreign(self, data: dict[str, Any]) -> None:
        """Kong's ``resolve_foreign``: a foreign key given by a unique field (``{"name": "svc"}``) becomes its id.

        A value that already holds a valid primary key is left for the normal checks; so is one that names
        no unique field (validation then reports it). A unique value that matches nothing is code 13.
        """
        unresolved: dict[str, dict[str, tuple[str, Any, str]]] = {}
        for name, f in self.schema.foreign_fields:
            value = data.get(name)
            if not isinstance(value, Mapping) or f.reference is None or is_uuid(value.get("id")):
                continue
            ref_schema = self.db.dao_internal(f.reference).schema
            misses: dict[str, tuple[str, Any, str]] = {}
            for unique_name, unique_field in ref_schema.fields:
                if not (unique_field.unique or ref_schema.endpoint_key == unique_name):
                    continue
                wanted = value.get(unique_name)
                if not isinstance(wanted, str) or not wanted:
                    continue
                found = self.db.backend.find(f.reference, f"u:{unique_name}", wanted)
                if found is not None:
                    data[name] = {"id": found["id"]}
                    misses = {}
                    break
                misses[unique_name] = (unique_name, wanted, f.reference)
            if misses:
                unresolved[name] = misses
        if unresolved:
            raise foreign_keys_unresolved(unresolved)

    def _insert(self, data: dict[str, Any], now: float) -> Row:
        self._resolve_foreign(data)
        self._prepare(data, "insert")
        row = self.schema.process_auto_fields(data, "insert", now)
        self._validated(row, True, False)
        self._transform(row)
        row = self.schema.complete(row)
        if self.db.backend.get(self.name, row["id"]) is not None:
            raise primary_key_violation({"id": row["id"]})
        self._write(row)
        return row

    def _update(self, existing: Row, patch: dict[str, Any], now: float) -> Row:
        self._resolve_foreign(patch)
        self._prepare(patch, "update")
        processed = self.schema.process_auto_fields(patch, "update", now)
        # the stored row keeps its nulls, as the Admin API reads it (``nulls = true``): a check over an
        # unset optional field then runs with null instead of failing "field required for entity check"
        merged = _merge(self.schema, processed, existing)
        merged["id"] = existing["id"]
        self._validated(merged, False, True)
        self._transform(merged)
        row = self.schema.complete(merged)
        row["created_at"] = existing.get("created_at")
        self._write(row)
        return row

    def _upsert(self, key: str, existing: Row | None, data: dict[str, Any], now: float) -> Row:
        if existing is not None:
            data["id"] = existing["id"]
        else:
            data["id"] = key if is_uuid(key) else self.db.new_id()
        self._resolve_foreign(data)
        self._prepare(data, "upsert")
        row = self.schema.process_auto_fields(data, "upsert", now)
        self._validated(row, True, False)
        self._transform(row)
        row = self.schema.complete(row)
        if existing is not None and "created_at" in existing:
            row["created_at"] = existing["created_at"]
        self._write(row)
        return row

    def _cache_key(self, row: Mapping[str, Any]) -> str | None:
        if not self.schema.cache_key:
            return None
        parts = []
        for name in self.schema.cache_key:
            value = row.get(name)
            parts.append(value.get("id") if isinstance(value, Mapping) else value)
        return dumps(parts)

    def _cache_key_fields(self, row: Mapping[str, Any]) -> dict[str, Any]:
        return {name: row.get(name) for name in sorted(self.schema.cache_key)}

    def _write(self, row: Row) -> None:
        """Unique and foreign-key checks, then the write itself."""
        backend = self.db.backend
        columns = index_columns(self.schema, row, self._cache_key(row))
        for name, f in self.schema.fields:
            value = columns.get(f"u:{name}")
            if f.unique and value is not None:
                other = backend.find(self.name, f"u:{name}", value)
                if other is not None and other["id"] != row["id"]:
                    raise unique_violation({name: row[name]})
        if columns.get("cache_key") is not None:
            other = backend.find(self.name, "cache_key", columns["cache_key"] or "")
            if other is not None and other["id"] != row["id"]:
                raise unique_violation(self._cache_key_fields(row))
        for name, f in self.schema.foreign_fields:
            ref = row.get(name)
            missing = (
                isinstance(ref, Mapping) and f.reference is not None and backend.get(f.reference, ref["id"]) is None
            )
            if missing:
                assert isinstance(ref, Mapping) and f.reference is not None
                raise foreign_key_violation(name, {"id": ref["id"]}, f.reference)
        self.db.put(self.name, row, columns)

    def _before_delete(self, row: Row) -> None:
        """Entity hook: refuse a delete (ca_certificates still referenced)."""

    def _delete(self, row: Row) -> None:
        self._before_delete(row)
        for child, field_name, on_delete in self.db.children(self.name):
            referencing = self.db.backend.scan(child, where={f"fk:{field_name}": row["id"]})
            if not referencing:
                continue
            if on_delete != "cascade":
                raise foreign_key_restricted(self.name, child)
            child_dao = self.db.dao_internal(child)
            for child_row in referencing:
                if self.db.backend.get(child, child_row["id"]) is not None:
                    child_dao._delete(child_row)
        self.db.remove(self.name, row["id"])


def _has_tags(row_tags: Any, wanted: list[str], mode: str) -> bool:
    have = set(row_tags or [])
    if mode == "or":
        return any(t in have for t in wanted)
    return all(t in have for t in wanted)


def _require_mapping(data: Any) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise schema_violation({"@entity": ["expected an input table"]})
    return data


# ====================================================================== entity-specific DAOs
class CertificatesDAO(DAO):
    """``kong/db/dao/certificates.lua``: the transient ``snis`` list becomes ``snis`` rows.

    Keys may be a certificate id or one of its SNI names. Differences from the generic DAO:
    ``upsert`` without ``snis`` removes all SNIs (Kong's Admin API PUT turns a missing list into null),
    and an unknown SNI name in ``update``/``delete`` raises ``NotFound("SNI not found")``.
    """

    def _lookup(self, key: str) -> Row | None:
        if not isinstance(key, str):
            return None
        if is_uuid(key):
            return self.db.backend.get(self.name, key)
        sni = self.db.backend.find("snis", "u:name", key)
        if sni is None:
            return None
        return self.db.backend.get(self.name, sni["certificate"]["id"])

    def _names(self, cert_id: str) -> list[str]:
        return sorted(r["name"] for r in self.db.backend.scan("snis", where={"fk:certificate": cert_id}))

    def _output(self, row: Row) -> Row:
        row["snis"] = self._names(row["id"])
        return row

    def _output_many(self, rows: list[Row]) -> list[Row]:
        if not rows:
            return rows
        if len(rows) > 20:
            by_cert: dict[str, list[str]] = {}
            for sni in self.db.backend.scan("snis"):
                by_cert.setdefault(sni["certificate"]["id"], []).append(sni["name"])
            for row in rows:
                row["snis"] = sorted(by_cert.get(row["id"], []))
            return rows
        return [self._output(r) for r in rows]

    def _name_list(self, data: Mapping[str, Any], cert_id: str | None) -> list[str] | None:
        """Kong's ``parse_name_list`` + ``check_list_is_new``: None means "leave the SNIs alone"."""
        if "snis" not in data:
            return None
        value = data["snis"]
        if value is None:
            return []
        if not isinstance(value, list):
            return None
        seen: list[Any] = []
        for name in value:
            if name in seen:
                raise schema_violation({"snis": f"{name} is duplicated"})
            seen.append(name)
        if not all(isinstance(n, str) for n in value):
            return None
        names = sorted(value)
        for name in names:
            owner = self.db.backend.find("snis", "u:name", name)
            if owner is not None and owner["certificate"]["id"] != cert_id:
                raise schema_violation(
                    {"snis": f"{name} already associated with existing certificate '{owner['certificate']['id']}'"}
                )
        return names

    def _sync_snis(self, cert_id: str, names: list[str], now: float) -> None:
        current = {r["name"]: r for r in self.db.backend.scan("snis", where={"fk:certificate": cert_id})}
        snis = self.db.dao_internal("snis")
        for name in names:
            if name not in current:
                snis._insert({"name": name, "certificate": {"id": cert_id}}, now)
        for name, row in current.items():
            if name not in names:
                self.db.remove("snis", row["id"])

    def insert(self, data: Mapping[str, Any]) -> Row:
        with self.db.transaction():
            data = dict(_require_mapping(data))
            names = self._name_list(data, None)
            now = time.time()
            row = self._insert(data, now)
            if names:
                self._sync_snis(row["id"], names, now)
            return self._output(row)

    def update(self, key: str, patch: Mapping[str, Any]) -> Row:
        with self.db.transaction():
            existing = self._lookup(key)
            if existing is None:
                raise NotFound() if is_uuid(key) else NotFound("SNI not found")
            patch = dict(_require_mapping(patch))
            names = self._name_list(patch, existing["id"])
            now = time.time()
            row = self._update(existing, patch, now)
            if names is not None:
                self._sync_snis(row["id"], names, now)
            return self._output(row)

    def upsert(self, key: str, data: Mapping[str, Any]) -> Row:
        with self.db.transaction():
            data = dict(_require_mapping(data))
            existing = self._lookup(key)
            if not is_uuid(key):
                snis = data.get("snis")
                if isinstance(snis, list) and key not in snis:
                    data["snis"] = [*snis, key]
                elif isinstance(snis, str):
                    data["snis"] = [snis] if snis == key else [snis, key]
                cert_id = existing["id"] if existing is not None else self.db.new_id()
            else:
                cert_id = key
            if "snis" not in data:
                data["snis"] = None
            names = self._name_list(data, cert_id)
            now = time.time()
            row = self._upsert(cert_id, existing, data, now)
            self._sync_snis(row["id"], names or [], now)
            return self._output(row)

    def delete(self, key: str) -> bool:
        with self.db.transaction():
            existing = self._lookup(key)
            if existing is None:
                if not is_uuid(key):
                    raise NotFound("SNI not found")
                return False
            self._delete(existing)
            return True


class CaCertificatesDAO(DAO):
    """``dao/ca_certificates.lua``: digest on write; delete refused while services or plugins reference it."""

    def _transform(self, row: dict[str, Any]) -> None:
        ca_entity.compute_digest(row)

    def _before_delete(self, row: Row) -> None:
        ca_id = row["id"]
        for service in self.db.backend.scan("services"):
            if ca_id in (service.get("ca_certificates") or []):
                raise referenced_by_others(
                    f"ca certificate {ca_id} is still referenced by services (id = {service['id']})"
                )
        for plugin in self.db.backend.scan("plugins"):
            spec = get_plugin(plugin.get("name"))
            config = plugin.get("config")
            refs = config.get("ca_certificates") if isinstance(config, dict) else None
            if spec is not None and spec.references_ca_certificates and ca_id in (refs or []):
                raise referenced_by_others(
                    f"ca certificate {ca_id} is still referenced by plugins (id = {plugin['id']})"
                )


class TargetsDAO(DAO):
    """``dao/targets.lua``: ``target`` is normalised (default port 8000) before validation."""

    def _prepare(self, data: dict[str, Any], context: str) -> None:
        target = data.get("target")
        if isinstance(target, str) and target:
            formatted, err = targets_entity.format_target(target)
            if formatted is None:
                raise schema_violation({"target": err})
            data["target"] = formatted

    def _cache_key_fields(self, row: Mapping[str, Any]) -> dict[str, Any]:
        return {"target": row.get("target"), "upstream": row.get("upstream")}


class PluginsDAO(DAO):
    """``dao/plugins.lua``: a plugin's explicit ``protocols`` must suit its route (or its service's routes)."""

    def _cache_key_fields(self, row: Mapping[str, Any]) -> dict[str, Any]:
        return scope_key(row)

    def _check_protocols(self, plugin: Mapping[str, Any]) -> None:
        protocols = plugin.get("protocols")
        if not isinstance(protocols, list):
            return
        route, service = plugin.get("route"), plugin.get("service")
        backend = self.db.backend
        if isinstance(route, Mapping):
            row = backend.get("routes", str(route.get("id")))
            if row is not None and not set(protocols) & set(row.get("protocols") or []):
                raise schema_violation({"protocols": "must match the associated route's protocols"})
        elif isinstance(service, Mapping):
            routes = backend.scan("routes", where={"fk:service": str(service.get("id"))})
            if routes and not any(set(protocols) & set(r.get("protocols") or []) for r in routes):
                raise schema_violation(
                    {"protocols": "must match the protocols of at least one route pointing to this Plugin's service"}
                )

    def _insert(self, data: dict[str, Any], now: float) -> Row:
        self._check_protocols(data)
        return super()._insert(data, now)

    def _upsert(self, key: str, existing: Row | None, data: dict[str, Any], now: float) -> Row:
        self._check_protocols(data)
        return super()._upsert(key, existing, data, now)

    def _update(self, existing: Row, patch: dict[str, Any], now: float) -> Row:
        if any(k in patch for k in ("protocols", "service", "route")):
            view = {k: patch.get(k) or existing.get(k) for k in ("protocols", "service", "route")}
            self._check_protocols(view)
        return super()._update(existing, patch, now)


_SPECIAL: dict[str, type[DAO]] = {
    "certificates": CertificatesDAO,
    "ca_certificates": CaCertificatesDAO,
    "targets": TargetsDAO,
    "plugins": PluginsDAO,
}


def make_dao(db: Database, schema: Schema) -> DAO:
    return _SPECIAL.get(schema.name, DAO)(db, schema)
