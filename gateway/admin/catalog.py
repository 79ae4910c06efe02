"""Which entities the Admin API serves, under which paths, and how they point at each other.

Kong generates its endpoints from each schema (``kong/api/endpoints.lua``): a collection, an item, and for
every foreign key three more paths (the foreign entity of an item, the nested collection and the nested
item). This table carries just what that generation needs, so the Admin API does not depend on how the
entity layer declares its schemas.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["CATALOG", "EntitySpec", "by_admin_name"]


@dataclass(frozen=True, slots=True)
class EntitySpec:
    """One entity as the Admin API sees it."""

    name: str
    """The store's entity name (``Database.dao(name)``) and Kong's schema name (``:services`` params)."""
    endpoint_key: str | None = None
    """The field a non-uuid path segment is looked up by (``/services/{name}``)."""
    foreign: dict[str, str] = field(default_factory=dict)
    """Foreign-key field -> referenced entity, in Kong's field order."""
    admin_name: str | None = None
    """Path segment of the top-level collection when it differs from ``name``."""
    nested_name: str | None = None
    """Path segment under a parent (``/consumers/{c}/mtls-auth``) when it differs."""

    @property
    def path(self) -> str:
        return self.admin_name or self.name

    @property
    def nested_path(self) -> str:
        return self.nested_name or self.admin_name or self.name


CATALOG: tuple[EntitySpec, ...] = (
    EntitySpec("services", "name", {"client_certificate": "certificates"}),
    EntitySpec("routes", "name", {"service": "services"}),
    EntitySpec("consumers", "username"),
    EntitySpec("plugins", "instance_name", {"route": "routes", "service": "services", "consumer": "consumers"}),
    EntitySpec("upstreams", "name", {"client_certificate": "certificates"}),
    EntitySpec("targets", None, {"upstream": "upstreams"}),
    EntitySpec("certificates"),
    EntitySpec("snis", "name", {"certificate": "certificates"}),
    EntitySpec("ca_certificates"),
    EntitySpec(
        "mtls_auth_credentials",
        None,
        {"consumer": "consumers", "ca_certificate": "ca_certificates"},
        admin_name="mtls-auths",
        nested_name="mtls-auth",
    ),
    EntitySpec("acls", None, {"consumer": "consumers"}),
)

_BY_NAME = {spec.name: spec for spec in CATALOG}


def by_name(name: str) -> EntitySpec:
    return _BY_NAME[name]


def by_admin_name(segment: str) -> EntitySpec | None:
    """``/schemas/{entity}`` accepts the schema name."""
    return _BY_NAME.get(segment)
