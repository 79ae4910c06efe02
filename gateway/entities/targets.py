"""The ``targets`` entity (``targets.lua`` + ``dao/targets.lua``): one ``host:port`` of an upstream.

Targets are stored normalised (``format_target``): the default port 8000 is appended and IPv6 addresses
are bracketed, so ``10.0.0.1`` and ``10.0.0.1:8000`` are the same target of an upstream. Timestamps have
millisecond precision, as in Kong.
"""

from __future__ import annotations

from gateway.entities import net, typedefs
from gateway.entities.schema import Field, Schema

__all__ = ["DEFAULT_PORT", "SCHEMA", "format_target", "validate_target"]

DEFAULT_PORT = 8000


def validate_target(target: str) -> str | None:
    info, _ = net.normalize_ip(target)
    if info is None:
        return f"Invalid target ('{target}'); not a valid hostname or ip address"
    return None


def format_target(target: str) -> tuple[str | None, str | None]:
    """``(normalised "host:port", None)`` or ``(None, error)`` as Kong's targets DAO writes it."""
    info, _ = net.normalize_ip(target)
    if info is None:
        return None, "Invalid target; not a valid hostname or ip address"
    return net.format_host(info, DEFAULT_PORT), None


SCHEMA = Schema(
    "targets",
    [
        ("id", typedefs.uuid),
        ("created_at", typedefs.auto_timestamp_ms),
        ("updated_at", typedefs.auto_timestamp_ms),
        ("upstream", Field("foreign", reference="upstreams", required=True, on_delete="cascade")),
        (
            "target",
            Field(
                "string",
                required=True,
                custom_validator=validate_target,
                description="The target address (ip or hostname) and port.",
            ),
        ),
        (
            "weight",
            Field(
                "integer",
                default=100,
                between=(0, 65535),
                description="The weight of this target in the balancer (0-65535).",
            ),
        ),
        ("tags", typedefs.tags),
    ],
    endpoint_key="target",
    cache_key=("upstream", "target"),
    description="A backend address of an upstream and its weight.",
)
