"""Reusable field types with Kong's validators and messages (``kong/db/schema/typedefs.lua``).

Each typedef is a ``Field``; call it to specialise (``typedefs.host(required=True)``). Lua patterns are
translated to Python regular expressions by hand, keeping Kong's byte-level character classes: Lua's
``%w`` is ASCII alphanumerics, and the byte ranges ``\\128-\\244`` mean "any non-ASCII character".
"""

from __future__ import annotations

import re

from gateway.entities import net, pem, route_regex
from gateway.entities.entity_checks import at_least_one_of
from gateway.entities.schema import Field, Schema
from gateway.entities.values import NULL

__all__ = [
    "HTTP_PROTOCOLS",
    "PROTOCOLS",
    "auto_timestamp_ms",
    "auto_timestamp_s",
    "certificate",
    "destinations",
    "header_name",
    "headers",
    "host",
    "host_with_optional_port",
    "hosts",
    "http_method",
    "key",
    "methods",
    "name",
    "path",
    "port",
    "protocol",
    "protocols",
    "protocols_http",
    "router_path",
    "router_paths",
    "sni",
    "sources",
    "tags",
    "timeout",
    "utf8_name",
    "uuid",
    "validate_wildcard_host",
    "wildcard_host",
]

PROTOCOLS = ("grpc", "grpcs", "http", "https", "tcp", "tls", "tls_passthrough", "udp")
"""``kong.constants.PROTOCOLS``, sorted as Kong sorts them (messages list them in this order)."""

HTTP_PROTOCOLS = ("grpc", "grpcs", "http", "https")
"""The protocols of the http subsystem: the default of a plugin's ``protocols``."""


# ------------------------------------------------------------------------------------------ validators
def validate_host(value: str) -> str | None:
    info, err = net.normalize_ip(value)
    if err is not None and err != "invalid port number":
        return f"invalid value: {value}"
    if err == "invalid port number" or (info is not None and info.port is not None):
        return "must not have a port"
    return None


def validate_host_with_optional_port(value: str) -> str | None:
    _, err = net.normalize_ip(value)
    return err


def _validate_sni_like(host: str) -> str | None:
    info, err = net.normalize_ip(host)
    if err is not None and err != "invalid port number":
        return f"invalid value: {host}"
    if info is not None and info.type != "name":
        return "must not be an IP"
    if err == "invalid port number" or (info is not None and info.port is not None):
        return "must not have a port"
    return None


def validate_sni(value: str) -> str | None:
    return _validate_sni_like(value)


def validate_wildcard_host(value: str) -> str | None:
    """Kong's ``validate_wildcard_host`` (SNI names): one ``*``, leftmost or rightmost, then a hostname."""
    idx = value.find("*")
    if idx != -1:
        if idx != 0 and idx != len(value) - 1:
            return "wildcard must be leftmost or rightmost character"
        if value.count("*") > 1:
            return "only one wildcard must be specified"
        value = value.replace("*", "wildcard")
    return _validate_sni_like(value)


_PATH_CHARS = re.compile(r"/[A-Za-z0-9.\-_~/%:@!$&'()*+,;=]*")


def _path_error(value: str) -> tuple[str | None, str | None]:
    """Kong's ``validate_path``: (error, code) where code is ``rfc3986`` or ``percent``."""
    if not _PATH_CHARS.fullmatch(value):
        return (f"invalid path: '{value}' (characters outside of the reserved list of RFC 3986 found)", "rfc3986")
    raw = re.sub(r"%[0-9A-Fa-f]{2}", "___", value)
    i = raw.find("%")
    if i != -1:
        return f"invalid url-encoded value: '{raw[i : i + 3]}'", "percent"
    return None, None


def validate_path(value: str) -> str | None:
    return _path_error(value)[0]


def validate_router_path(value: str) -> str | None:
    """Prefix paths must be normalised; ``~`` paths must compile as regular expressions.

    Kong dry-runs the regex with PCRE here (``ngx.re.find(..., "aj")``); we compile it with the engine the
    router runs (``route_regex``) and refuse here only what PCRE would refuse too (``Refusal.SYNTAX``); the
    text after ``PCRE returned:`` is RE2's. Valid PCRE that needs backtracking (a back-reference...) passes
    this field check and is refused by the routes entity check, as Kong 3.x's ATC validation does.
    """
    err, code = _path_error(value)
    if code == "percent":
        return err
    if not value.startswith("~"):
        normalized = net.normalize_path(value, True)
        if value != normalized:
            return f"non-normalized path, consider use '{normalized}' instead"
        return None
    try:
        route_regex.compile_path(value)
    except route_regex.RegexError as exc:
        if exc.kind is route_regex.Refusal.SYNTAX:
            return f"invalid regex: '{exc.regex}' (PCRE returned: {exc.reason})"
    return None


def validate_name(value: str) -> str | None:
    if not re.fullmatch(r"[A-Za-z0-9.\-_~]+", value):
        return f"invalid value '{value}': it must only contain alphanumeric and '., -, _, ~' characters"
    return None


def validate_utf8_name(value: str) -> str | None:
    if not re.fullmatch(r"[A-Za-z0-9.\-_~\u0080-\U0010FFFF]+", value):
        return f"invalid value '{value}': the only accepted ascii characters are alphanumerics or ., -, _, and ~"
    return None


def validate_tag(value: str) -> str | None:
    if not re.fullmatch(r"[ !-+\-.0-~\u0080-\U0010FFFF]+", value):
        return f"invalid tag '{value}': expected printable ascii (except `,` and `/`) or valid utf-8 sequences"
    return None


def validate_header_name(value: str) -> str | None:
    if re.fullmatch(r"[a-zA-Z0-9\-_]+", value):
        return None
    return f"bad header name '{value}', allowed characters are A-Z, a-z, 0-9, '_', and '-'"


def validate_http_token(value: str) -> str | None:
    if re.search(r"[\x00-\x20\x7f()<>@,;:\\\"/?={}\[\]]", value):
        return (
            "contains one or more invalid characters. ASCII control characters (0-31;127), space, tab "
            'and the characters ()<>@,;:\\"/?={}[] are not allowed.'
        )
    return None


def validate_ip_or_cidr(value: str) -> str | None:
    if net.is_valid_ip_or_cidr(value):
        return None
    return f"invalid ip or cidr range: '{value}'"


def validate_certificate(value: str) -> str | None:
    try:
        pem.load_certificate(value)
    except pem.PemError as exc:
        return f"invalid certificate: {exc}"
    return None


def validate_key(value: str) -> str | None:
    try:
        pem.load_private_key(value)
    except pem.PemError as exc:
        return f"invalid key: {exc}"
    return None


def validate_host_with_wildcards(value: str) -> str | None:
    return validate_host_with_optional_port(value.replace("*", "abc"))


# ------------------------------------------------------------------------------------------ typedefs
http_method = Field("string", match=r"^[A-Z]+$", description="An HTTP method, upper case.")
protocol = Field("string", one_of=PROTOCOLS, description="A protocol, such as http or https.")
host = Field("string", custom_validator=validate_host, description="A host name, such as example.com.")
host_with_optional_port = Field(
    "string", custom_validator=validate_host_with_optional_port, description="A host name with an optional port."
)
wildcard_host = Field(
    "string",
    custom_validator=validate_wildcard_host,
    description="A host name with at most one leading or trailing wildcard.",
)
sni = Field("string", custom_validator=validate_sni, description="A TLS server name (no IP, no port).")
port = Field("integer", between=(0, 65535), description="A port number, 0-65535.")
path = Field(
    "string",
    starts_with="/",
    match_none=((r"//", "must not have empty segments"),),
    custom_validator=validate_path,
    description="A URL path starting with /.",
)
timeout = Field("integer", between=(0, 2**31 - 2), description="Milliseconds, 0 to 2^31-2.")
uuid = Field("string", uuid=True, auto=True, description="A UUID, generated when absent.")
auto_timestamp_s = Field("integer", timestamp=True, auto=True, description="Unix time in seconds.")
auto_timestamp_ms = Field("number", timestamp=True, auto=True, description="Unix time with milliseconds.")
name = Field("string", unique=True, custom_validator=validate_name, description="A unique name.")
utf8_name = Field("string", unique=True, custom_validator=validate_utf8_name, description="A unique UTF-8 name.")
certificate = Field("string", custom_validator=validate_certificate, description="A PEM certificate.")
key = Field("string", custom_validator=validate_key, description="A PEM private key.")
tag = Field("string", required=True, custom_validator=validate_tag)
tags = Field("set", elements=tag, description="A set of tags.")
header_name = Field("string", custom_validator=validate_header_name, description="An HTTP header name.")
cookie_name = Field("string", custom_validator=validate_http_token, description="An HTTP token.")
ip_or_cidr = Field("string", custom_validator=validate_ip_or_cidr)

protocols = Field(
    "set", required=True, default=list(HTTP_PROTOCOLS), elements=protocol, description="A set of protocols."
)
protocols_http = Field(
    "set", required=True, default=list(HTTP_PROTOCOLS), elements=Field("string", one_of=HTTP_PROTOCOLS)
)

_ip_port_record = Schema(
    "ip_port", [("ip", ip_or_cidr), ("port", port)], entity_checks=(at_least_one_of("ip", "port"),)
)
sources = Field(
    "set",
    elements=Field("record", record=_ip_port_record),
    description="Sources, each with at least one of ip or port.",
)
destinations = Field(
    "set",
    elements=Field("record", record=_ip_port_record),
    description="Destinations, each with at least one of ip or port.",
)
methods = Field("set", elements=http_method, description="HTTP methods.")
hosts = Field(
    "array",
    elements=Field(
        "string",
        match_all=((r"^[^*]*\*?[^*]*$", "invalid wildcard: must have at most one wildcard"),),
        match_any=((r"^\*\.", r"\.\*$", r"^[^*]*$"), "invalid wildcard: must be placed at leftmost or rightmost label"),
        custom_validator=validate_host_with_wildcards,
    ),
    description="Hosts, with at most one wildcard label at either end.",
)
router_path = Field(
    "string",
    match_none=((r"//", "must not have empty segments"),),
    match_any=((r"^/", r"^~/"), "should start with: / (fixed path) or ~/ (regex path)"),
    custom_validator=validate_router_path,
    description="A prefix path (/...) or a regex path (~/...).",
)
router_paths = Field("array", elements=router_path, description="Router paths.")
headers = Field(
    "map",
    keys=header_name,
    values=Field("array", elements=Field("string")),
    description="Header names to lists of values.",
)

no_value = NULL  # re-exported for entity modules: ``eq=typedefs.no_value``
