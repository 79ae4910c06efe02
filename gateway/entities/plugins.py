"""The ``plugins`` entity (``plugins.lua``): a plugin instance, global or scoped to route/service/consumer.

``config`` is validated by the plugin's registered config schema (``plugin_configs``). A name that is not an
enabled plugin of this gateway is refused as Kong refuses a plugin missing from its ``plugins`` setting:
``name: plugin 'acl' not enabled; add it to the 'plugins' configuration property``, followed here by which plugins
this gateway runs, so nothing is ever stored that no handler would run. One instance per (name, route, service,
consumer) scope: the store enforces that uniqueness with Kong's message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.entities import typedefs
from gateway.entities.plugin_configs import get_plugin, not_enabled_message
from gateway.entities.schema import Field, Schema, Subschema
from gateway.entities.values import NULL

__all__ = ["SCHEMA", "scope_key"]


def _subschema(data: Mapping[str, Any]) -> Subschema | None:
    spec = get_plugin(data.get("name"))
    if spec is None:
        return None
    fields: dict[str, Field] = {
        "config": Field("record", record=spec.config, required=True),
        "protocols": typedefs.protocols(default=list(spec.protocols_default)),
    }
    if spec.no_consumer:
        fields["consumer"] = Field("foreign", reference="consumers", default=None, eq=NULL, on_delete="cascade")
    return Subschema(spec.name, fields=fields, entity_checks=spec.entity_checks)


def scope_key(row: Mapping[str, Any]) -> dict[str, Any]:
    """The uniqueness key of a plugin, shaped as Kong prints it in the 409 message."""
    return {name: row.get(name) for name in ("consumer", "name", "route", "service")}


SCHEMA = Schema(
    "plugins",
    [
        ("id", typedefs.uuid),
        ("name", Field("string", required=True, description="The name of the Plugin.")),
        ("instance_name", typedefs.utf8_name),
        ("created_at", typedefs.auto_timestamp_s),
        ("updated_at", typedefs.auto_timestamp_s),
        ("route", Field("foreign", reference="routes", default=None, on_delete="cascade")),
        ("service", Field("foreign", reference="services", default=None, on_delete="cascade")),
        ("consumer", Field("foreign", reference="consumers", default=None, on_delete="cascade")),
        ("config", Field("record", default={}, description="The configuration of the Plugin.")),
        ("protocols", typedefs.protocols),
        ("enabled", Field("boolean", required=True, default=True, description="Whether the plugin is applied.")),
        ("tags", typedefs.tags),
    ],
    endpoint_key="instance_name",
    subschema_key="name",
    subschema_resolver=_subschema,
    subschema_error=not_enabled_message,
    cache_key=("name", "route", "service", "consumer"),
    description="A plugin instance and its configuration.",
)
