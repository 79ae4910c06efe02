"""The entity-specific DAOs of ``kong/db/dao``: certificates' SNI lists, CA digests, targets, plugins' scope.

Each overrides a hook of the generic ``dao.DAO`` (lookup, output, transform, cache key, before delete, write);
``make_dao`` picks the class of an entity.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from gateway.entities import ca_certificates as ca_entity
from gateway.entities import targets as targets_entity
from gateway.entities.errors import NotFound, referenced_by_others, schema_violation
from gateway.entities.plugin_configs import get_plugin
from gateway.entities.plugins import scope_key
from gateway.entities.schema import Schema
from gateway.entities.values import is_uuid
from gateway.store.backend import Row
from gateway.store.dao import DAO, DaoHost, require_mapping

__all__ = ["make_dao"]


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
            data = dict(require_mapping(data))
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
            patch = dict(require_mapping(patch))
            names = self._name_list(patch, existing["id"])
            now = time.time()
            row = self._update(existing, patch, now)
            if names is not None:
                self._sync_snis(row["id"], names, now)
            return self._output(row)

    def upsert(self, key: str, data: Mapping[str, Any]) -> Row:
        with self.db.transaction():
            data = dict(require_mapping(data))
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


def make_dao(db: DaoHost, schema: Schema) -> DAO:
    """The DAO of one entity: its special class, or the generic one."""
    return _SPECIAL.get(schema.name, DAO)(db, schema)
