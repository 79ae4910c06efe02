"""Entity definitions: one module per Kong entity, built on the schema framework in ``schema.py``.

``SCHEMAS`` lists them in dependency order (an entity comes after every entity it references), which is
the order the store creates tables, loads declarative configurations and exports rows.
"""

from __future__ import annotations

from gateway.entities import (
    acls,
    ca_certificates,
    certificates,
    consumers,
    mtls_auth_credentials,
    plugins,
    routes,
    services,
    snis,
    targets,
    upstreams,
)
from gateway.entities.schema import Schema

__all__ = ["ENTITY_NAMES", "SCHEMAS", "get_schema"]

SCHEMAS: dict[str, Schema] = {
    s.name: s
    for s in (
        certificates.SCHEMA,
        ca_certificates.SCHEMA,
        snis.SCHEMA,
        services.SCHEMA,
        routes.SCHEMA,
        consumers.SCHEMA,
        upstreams.SCHEMA,
        targets.SCHEMA,
        plugins.SCHEMA,
        mtls_auth_credentials.SCHEMA,
        acls.SCHEMA,
    )
}

ENTITY_NAMES: tuple[str, ...] = tuple(SCHEMAS)


def get_schema(entity: str) -> Schema:
    """The schema of ``entity``; raises ``KeyError`` for an unknown entity name."""
    return SCHEMAS[entity]
