"""The ``upstreams`` entity (``upstreams.lua``): a virtual host balanced over targets, with health checks.

``healthchecks`` is a record whose every level has Kong's defaults (active ``https_verify_certificate``
true, probing disabled by intervals of 0...). ``algorithm`` and ``hash_on`` are also shorthands, as in
Kong, so that setting ``hash_on`` switches the algorithm to consistent hashing and the balancing
algorithms without hashing clear ``hash_on``.
"""

from __future__ import annotations

from typing import Any

from gateway.entities import net, typedefs
from gateway.entities.entity_checks import conditional, distinct
from gateway.entities.schema import Field, Schema

__all__ = ["HEALTHCHECKS_DEFAULTS", "SCHEMA", "validate_upstream_name"]


def validate_upstream_name(name: str) -> str | None:
    info, _ = net.normalize_ip(name)
    if info is None:
        return f"Invalid name ('{name}'); must be a valid hostname"
    if info.type != "name":
        return f"Invalid name ('{name}'); no ip addresses allowed"
    if info.port is not None:
        return f"Invalid name ('{name}'); no port allowed"
    return None


_HASH = ("none", "consumer", "ip", "header", "cookie", "path", "query_arg", "uri_capture")
hash_on = Field("string", default="none", one_of=_HASH)
http_statuses = Field("array", elements=Field("integer", between=(100, 999)))
seconds = Field("number", between=(0, 65535))
positive_int = Field("integer", between=(1, 2**31))
one_byte_integer = Field("integer", between=(0, 255))
check_type = Field("string", one_of=("tcp", "http", "https", "grpc", "grpcs"), default="http")
simple_param = Field("string", len_min=1)


def _record(name: str, fields: list[tuple[str, Field]]) -> Field:
    rec = Schema(name, fields)
    return Field("record", record=rec, default=rec.complete(rec.process_auto_fields({}, "insert")))


_active = _record(
    "active",
    [
        ("type", check_type),
        ("timeout", seconds(default=1)),
        ("concurrency", positive_int(default=10)),
        ("http_path", typedefs.path(default="/")),
        ("https_sni", typedefs.sni),
        ("https_verify_certificate", Field("boolean", required=True, default=True)),
        ("headers", typedefs.headers),
        (
            "healthy",
            _record(
                "healthy",
                [
                    ("interval", seconds(default=0)),
                    ("http_statuses", http_statuses(default=[200, 302])),
                    ("successes", one_byte_integer(default=0)),
                ],
            ),
        ),
        (
            "unhealthy",
            _record(
                "unhealthy",
                [
                    ("interval", seconds(default=0)),
                    ("http_statuses", http_statuses(default=[429, 404, 500, 501, 502, 503, 504, 505])),
                    ("tcp_failures", one_byte_integer(default=0)),
                    ("timeouts", one_byte_integer(default=0)),
                    ("http_failures", one_byte_integer(default=0)),
                ],
            ),
        ),
    ],
)

_passive = _record(
    "passive",
    [
        ("type", check_type),
        (
            "healthy",
            _record(
                "healthy",
                [
                    (
                        "http_statuses",
                        http_statuses(
                            default=[
                                200,
                                201,
                                202,
                                203,
                                204,
                                205,
                                206,
                                207,
                                208,
                                226,
                                300,
                                301,
                                302,
                                303,
                                304,
                                305,
                                306,
                                307,
                                308,
                            ]
                        ),
                    ),
                    ("successes", one_byte_integer(default=0)),
                ],
            ),
        ),
        (
            "unhealthy",
            _record(
                "unhealthy",
                [
                    ("http_statuses", http_statuses(default=[429, 500, 503])),
                    ("tcp_failures", one_byte_integer(default=0)),
                    ("timeouts", one_byte_integer(default=0)),
                    ("http_failures", one_byte_integer(default=0)),
                ],
            ),
        ),
    ],
)

healthchecks = _record(
    "healthchecks",
    [
        ("active", _active),
        ("passive", _passive),
        ("threshold", Field("number", default=0, between=(0, 100))),
    ],
)
HEALTHCHECKS_DEFAULTS: dict[str, Any] = healthchecks.default_value()


def _algorithm_shorthand(value: Any) -> dict[str, Any]:
    if value in ("least-connections", "latency"):
        return {"algorithm": value, "hash_on": None}
    return {"algorithm": value}


def _hash_on_shorthand(value: Any) -> dict[str, Any]:
    if value is None:
        return {"hash_on": "none"}
    if value == "none":
        return {"hash_on": value, "algorithm": "round-robin"}
    return {"hash_on": value, "algorithm": "consistent-hashing"}


def _when(if_field: str, value: str, then_field: str, then_match: dict[str, Any]) -> Any:
    return conditional(if_field, {"match": f"^{value}$"}, then_field, then_match)


SCHEMA = Schema(
    "upstreams",
    [
        ("id", typedefs.uuid),
        ("created_at", typedefs.auto_timestamp_s),
        (
            "name",
            Field(
                "string",
                required=True,
                unique=True,
                custom_validator=validate_upstream_name,
                description="A hostname, equal to the host of the Services using it.",
            ),
        ),
        ("updated_at", typedefs.auto_timestamp_s),
        (
            "algorithm",
            Field(
                "string",
                default="round-robin",
                one_of=("consistent-hashing", "least-connections", "round-robin", "latency"),
            ),
        ),
        ("hash_on", hash_on),
        ("hash_fallback", hash_on),
        ("hash_on_header", typedefs.header_name),
        ("hash_fallback_header", typedefs.header_name),
        ("hash_on_cookie", typedefs.cookie_name),
        ("hash_on_cookie_path", typedefs.path(default="/")),
        ("hash_on_query_arg", simple_param),
        ("hash_fallback_query_arg", simple_param),
        ("hash_on_uri_capture", simple_param),
        ("hash_fallback_uri_capture", simple_param),
        ("slots", Field("integer", default=10000, between=(10, 2**16))),
        ("healthchecks", healthchecks),
        ("tags", typedefs.tags),
        ("host_header", typedefs.host_with_optional_port),
        (
            "client_certificate",
            Field("foreign", reference="certificates", description="Client certificate for TLS to the targets."),
        ),
        ("use_srv_name", Field("boolean", default=False)),
    ],
    endpoint_key="name",
    entity_checks=(
        _when("hash_on", "header", "hash_on_header", {"required": True}),
        _when("hash_fallback", "header", "hash_fallback_header", {"required": True}),
        _when("hash_on", "cookie", "hash_on_cookie", {"required": True}),
        _when("hash_fallback", "cookie", "hash_on_cookie", {"required": True}),
        _when("hash_on", "none", "hash_fallback", {"one_of": ("none",)}),
        _when("hash_on", "cookie", "hash_fallback", {"one_of": ("none",)}),
        _when(
            "hash_on",
            "consumer",
            "hash_fallback",
            {"one_of": ("none", "ip", "header", "cookie", "path", "query_arg", "uri_capture")},
        ),
        _when(
            "hash_on",
            "ip",
            "hash_fallback",
            {"one_of": ("none", "consumer", "header", "cookie", "path", "query_arg", "uri_capture")},
        ),
        _when(
            "hash_on",
            "path",
            "hash_fallback",
            {"one_of": ("none", "consumer", "header", "cookie", "query_arg", "ip", "uri_capture")},
        ),
        distinct("hash_on_header", "hash_fallback_header"),
        _when("hash_on", "query_arg", "hash_on_query_arg", {"required": True}),
        _when("hash_fallback", "query_arg", "hash_fallback_query_arg", {"required": True}),
        distinct("hash_on_query_arg", "hash_fallback_query_arg"),
        _when("hash_on", "uri_capture", "hash_on_uri_capture", {"required": True}),
        _when("hash_fallback", "uri_capture", "hash_fallback_uri_capture", {"required": True}),
        distinct("hash_on_uri_capture", "hash_fallback_uri_capture"),
    ),
    shorthand_fields=(
        ("algorithm", Field("string"), _algorithm_shorthand),
        ("hash_on", Field("string"), _hash_on_shorthand),
    ),
    description="A load-balanced virtual host and its health checks.",
)
