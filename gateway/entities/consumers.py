"""The ``consumers`` entity (``consumers.lua``): who is calling. Addressed by id or ``username``."""

from __future__ import annotations

from gateway.entities import typedefs
from gateway.entities.entity_checks import at_least_one_of
from gateway.entities.schema import Field, Schema

__all__ = ["SCHEMA"]

SCHEMA = Schema(
    "consumers",
    [
        ("id", typedefs.uuid),
        ("created_at", typedefs.auto_timestamp_s),
        ("updated_at", typedefs.auto_timestamp_s),
        ("username", Field("string", unique=True, description="The unique username of the Consumer.")),
        ("custom_id", Field("string", unique=True, description="An existing unique id of the Consumer.")),
        ("tags", typedefs.tags),
    ],
    endpoint_key="username",
    entity_checks=(at_least_one_of("custom_id", "username"),),
    description="A Consumer: an identity that plugins authenticate and attach configuration to.",
)
