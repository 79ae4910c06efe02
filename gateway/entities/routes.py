"""The ``routes`` entity (``routes.lua`` + ``routes_subschemas.lua``), for the ``traditional_compatible`` flavour.

The subschema is chosen by the first protocol that has one (``http``/``https``, ``tcp``/``tls``/``udp``/
``tls_passthrough``, ``grpc``/``grpcs``); it forbids fields that make no sense for that family and demands
at least one matching attribute (an http route needs one of methods/hosts/headers/paths, an https one may
use snis instead). ``snis`` elements are wildcard hosts, and ``snis`` is only allowed with a TLS protocol.
The ``expressions`` flavour fields (``expression``, ``priority``) are not modelled.

Stream routes (``tcp``, ``tls``, ``tls_passthrough``) are Kong's: served by ``gateway.stream`` on ``stream_listen``.
``udp`` is refused (an ``@entity`` error): Kong accepts it, but no UDP proxy exists here, and a route accepted and
never served would let a test suite pass here and fail on Kong.

Kong's ``validate_route`` entity check (the route as an ATC expression, parsed by the ATC router) is kept for
what it refuses in practice: a regex (path or ``~*`` header value) that the router's engine cannot run, reported
as ``Router Expression failed validation: <detail>`` (``route_regex``, which the router compiles with too).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.entities import route_regex, typedefs
from gateway.entities.entity_checks import conditional, conditional_at_least_one_of, custom_check
from gateway.entities.schema import Field, Schema, Subschema
from gateway.entities.values import NULL

__all__ = ["SCHEMA", "TLS_PROTOCOLS"]

TLS_PROTOCOLS = ("grpcs", "https", "tls", "tls_passthrough")

_STREAM = "cannot set '{}' when 'protocols' is 'tcp', 'tls', 'tls_passthrough' or 'udp'"
_GRPC = "cannot set '{}' when 'protocols' is 'grpc' or 'grpcs'"
_HTTP = "cannot set '{}' when 'protocols' is 'http' or 'https'"

_http = Subschema(
    "http",
    fields={
        "sources": typedefs.sources(eq=NULL, err=_HTTP.format("sources")),
        "destinations": typedefs.destinations(eq=NULL, err=_HTTP.format("destinations")),
    },
    entity_checks=(
        conditional_at_least_one_of(
            "protocols",
            {"contains": "https"},
            ("methods", "hosts", "headers", "paths", "snis"),
            then_err="must set one of %s when 'protocols' is 'https'",
            else_match={"contains": "http"},
            else_then_at_least_one_of=("methods", "hosts", "headers", "paths"),
            else_then_err="must set one of %s when 'protocols' is 'http'",
        ),
    ),
)

_stream = Subschema(
    "tcp",
    fields={
        "methods": typedefs.methods(eq=NULL, err=_STREAM.format("methods")),
        "hosts": typedefs.hosts(eq=NULL, err=_STREAM.format("hosts")),
        "paths": typedefs.router_paths(eq=NULL, err=_STREAM.format("paths")),
        "headers": typedefs.headers(eq=NULL, err=_STREAM.format("headers")),
    },
    entity_checks=(
        conditional_at_least_one_of(
            "protocols",
            {"elements": Field("string", one_of=("tcp", "tls", "udp"))},
            ("sources", "destinations", "snis"),
            then_err="must set one of %s when 'protocols' is 'tcp', 'tls' or 'udp'",
        ),
        conditional_at_least_one_of(
            "protocols",
            {"elements": Field("string", one_of=("tls_passthrough",))},
            ("snis",),
            then_err="must set snis when 'protocols' is 'tls_passthrough'",
        ),
    ),
)

_grpc = Subschema(
    "grpc",
    fields={
        "strip_path": Field("boolean", required=True, default=False, ne=True, err=_GRPC.format("strip_path")),
        "methods": typedefs.methods(eq=NULL, err=_GRPC.format("methods")),
        "sources": typedefs.sources(eq=NULL, err=_GRPC.format("sources")),
        "destinations": typedefs.sources(eq=NULL, err=_GRPC.format("destinations")),
    },
    entity_checks=(
        conditional_at_least_one_of(
            "protocols",
            {"contains": "grpcs"},
            ("hosts", "headers", "paths", "snis"),
            then_err="must set one of %s when 'protocols' is 'grpcs'",
            else_match={"contains": "grpc"},
            else_then_at_least_one_of=("hosts", "headers", "paths"),
            else_then_err="must set one of %s when 'protocols' is 'grpc'",
        ),
    ),
)

SUBSCHEMAS: dict[str, Subschema] = {
    "http": _http,
    "https": _http,
    "tcp": _stream,
    "tls": _stream,
    "udp": _stream,
    "tls_passthrough": _stream,
    "grpc": _grpc,
    "grpcs": _grpc,
}


# Kong's ``validate_route`` reads these; like any custom check it is skipped while one of them is invalid
_EXPRESSION_SOURCES = (
    "id",
    "protocols",
    "snis",
    "sources",
    "destinations",
    "methods",
    "hosts",
    "paths",
    "headers",
    "regex_priority",
)


def _check_expression(entity: dict[str, Any]) -> str | None:
    """Kong's ``validate_route``, for its regexes: the first one the router's engine refuses."""
    refusal = route_regex.first_refusal(entity.get("paths"), entity.get("headers"))
    if refusal is None:
        return None
    return f"Router Expression failed validation: {refusal}"


UDP_REFUSED = "'udp' routes are not supported: this gateway proxies TCP streams only (tcp, tls, tls_passthrough)"


def _check_udp(entity: dict[str, Any]) -> str | None:
    protocols = entity.get("protocols")
    return UDP_REFUSED if isinstance(protocols, list) and "udp" in protocols else None


def _subschema(data: Mapping[str, Any]) -> Subschema | None:
    """Kong's rule: the first protocol of the set that names a subschema."""
    protocols = data.get("protocols")
    if isinstance(protocols, str):
        return SUBSCHEMAS.get(protocols)
    if isinstance(protocols, list):
        for p in protocols:
            if isinstance(p, str) and p in SUBSCHEMAS:
                return SUBSCHEMAS[p]
    return None


SCHEMA = Schema(
    "routes",
    [
        ("id", typedefs.uuid),
        ("created_at", typedefs.auto_timestamp_s),
        ("updated_at", typedefs.auto_timestamp_s),
        ("name", typedefs.utf8_name),
        (
            "protocols",
            Field(
                "set",
                len_min=1,
                required=True,
                elements=typedefs.protocol,
                mutually_exclusive_subsets=(
                    ("http", "https"),
                    ("tcp", "tls", "udp"),
                    ("tls_passthrough",),
                    ("grpc", "grpcs"),
                ),
                default=["http", "https"],
                description="The protocols this Route allows.",
            ),
        ),
        (
            "https_redirect_status_code",
            Field(
                "integer",
                one_of=(426, 301, 302, 307, 308),
                default=426,
                required=True,
                description="Status when everything but the protocol matches.",
            ),
        ),
        (
            "strip_path",
            Field(
                "boolean",
                required=True,
                default=True,
                description="Strip the matching path prefix from the upstream request.",
            ),
        ),
        (
            "preserve_host",
            Field("boolean", required=True, default=False, description="Send the client's Host header upstream."),
        ),
        ("request_buffering", Field("boolean", required=True, default=True)),
        ("response_buffering", Field("boolean", required=True, default=True)),
        ("tags", typedefs.tags),
        ("service", Field("foreign", reference="services", description="The Service this Route proxies to.")),
        ("snis", Field("set", elements=typedefs.wildcard_host, description="SNIs that match this Route.")),
        ("sources", typedefs.sources),
        ("destinations", typedefs.destinations),
        ("methods", typedefs.methods),
        ("hosts", typedefs.hosts),
        ("paths", typedefs.router_paths),
        (
            "headers",
            typedefs.headers(
                keys=typedefs.header_name(
                    match_none=(
                        (
                            "^[Hh][Oo][Ss][Tt]$",
                            "cannot contain 'host' header, which must be specified in the 'hosts' attribute",
                        ),
                    )
                )
            ),
        ),
        (
            "regex_priority",
            Field("integer", default=0, description="Order among routes matching by regex; higher first."),
        ),
        (
            "path_handling",
            Field(
                "string",
                default="v0",
                one_of=("v0", "v1"),
                description="How service, route and request paths are joined.",
            ),
        ),
    ],
    endpoint_key="name",
    entity_checks=(
        conditional(
            "protocols",
            {"elements": Field("string", not_one_of=TLS_PROTOCOLS)},
            "snis",
            {"len_eq": 0},
            then_err="'snis' can only be set when 'protocols' is 'grpcs', 'https', 'tls' or 'tls_passthrough'",
        ),
        custom_check(_EXPRESSION_SOURCES, _check_expression, run_with_missing=True),
        custom_check(("protocols",), _check_udp),
    ),
    subschema_key="protocols",
    subschema_resolver=_subschema,
    subschema_error="unknown type: %s",
    description="A Route: the rules that match a request and the Service it goes to.",
)
