"""The ``acls`` entity (Kong OSS ``kong/plugins/acl/daos.lua``): one group a consumer belongs to.

Read by the ``acl`` plugin (``gateway/plugins/acl/``). A consumer has a group at most once: ``(consumer, group)`` is
Kong's ``cache_key``, unique in the store, so a second ``admin`` for the same consumer is a 409
``UNIQUE violation detected on '{consumer={id="..."},group="admin"}'``. The Admin API addresses an acl by id, and under
its consumer also by group name (``/consumers/{c}/acls/{group}``, Kong's ``api.lua``). Deleting the consumer deletes
its acls. Kong's schema has no ``updated_at`` and no endpoint key.
"""

from __future__ import annotations

from gateway.entities import typedefs
from gateway.entities.schema import Field, Schema

__all__ = ["SCHEMA"]

SCHEMA = Schema(
    "acls",
    [
        ("id", typedefs.uuid),
        ("created_at", typedefs.auto_timestamp_s),
        ("consumer", Field("foreign", reference="consumers", required=True, on_delete="cascade")),
        ("group", Field("string", required=True, description="The name of a group the consumer belongs to.")),
        ("tags", typedefs.tags),
    ],
    cache_key=("consumer", "group"),
    description="A group a consumer belongs to, read by the acl plugin.",
)
