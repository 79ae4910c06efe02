"""The ``services`` entity (``kong/db/schema/entities/services.lua``): where routes proxy to.

Upstream TLS fields (``client_certificate``, ``tls_verify``, ``tls_verify_depth``, ``ca_certificates``)
are only allowed when ``protocol`` is ``https``, ``tls`` or ``grpcs`` (Kong: ``https``/``tls`` only);
``ca_certificates`` holds CA ids that are deliberately *not* foreign-key checked (Kong resolves them at request
time). The ``url`` shorthand is
split with LuaSocket's ``url.parse`` rules, ported in ``parse_url``.
"""

from __future__ import annotations

import re
from typing import Any

from gateway.entities import typedefs
from gateway.entities.entity_checks import conditional
from gateway.entities.schema import Field, Schema
from gateway.entities.values import NULL

__all__ = ["SCHEMA", "TLS_FIELD_PROTOCOLS", "expand_url", "parse_url"]

DEFAULT_PROTOCOL = "http"
DEFAULT_PORT = 80

nonzero_timeout = Field("integer", between=(1, 2**31 - 2))


def parse_url(url: str) -> dict[str, str]:
    """LuaSocket's ``socket.url.parse``: scheme, authority (userinfo, host, port), path; query/fragment dropped."""
    parsed: dict[str, str] = {}
    m = re.match(r"[A-Za-z0-9][A-Za-z0-9+\-.]*:", url)
    if m:
        parsed["scheme"] = m.group(0)[:-1]
        url = url[m.end() :]
    m = re.match(r"//([^/]*)", url)
    authority = None
    if m:
        authority = m.group(1)
        url = url[m.end() :]
    url = re.sub(r"#(.*)$", "", url, flags=re.S)
    url = re.sub(r"\?(.*)", "", url, count=1, flags=re.S)
    url = re.sub(r";(.*)", "", url, count=1, flags=re.S)
    if url:
        parsed["path"] = url
    if authority is None:
        return parsed
    m = re.match(r"([^@]*)@", authority)
    if m:
        authority = authority[m.end() :]
    m = re.search(r":([^:\]]*)$", authority)
    if m:
        parsed["port"] = m.group(1)
        authority = authority[: m.start()]
    if authority:
        v6 = re.fullmatch(r"\[(.+)\]", authority, re.S)
        parsed["host"] = v6.group(1) if v6 else authority
    return parsed


def expand_url(value: Any) -> dict[str, Any] | None:
    """The ``url`` shorthand: protocol, host, port, path (Kong's defaults: 443 means https, else http/80)."""
    if value is None:
        return None
    parsed = parse_url(str(value))
    raw_port = parsed.get("port")
    port: int | None = int(raw_port) if raw_port is not None and raw_port.isdigit() else None
    implied = {80: "http", 443: "https"}.get(port) if port is not None else None
    protocol = parsed.get("scheme") or implied or DEFAULT_PROTOCOL
    final_port: Any = port if port is not None else raw_port
    if final_port is None:
        final_port = {"http": 80, "https": 443}.get(protocol, DEFAULT_PORT)
    return {"protocol": protocol, "host": parsed.get("host"), "port": final_port, "path": parsed.get("path")}


#: the protocols whose services may carry the upstream TLS fields: Kong's ``https``/``tls``, plus ``grpcs`` (Kong
#: refuses them there, so a grpcs upstream can be neither verified nor given a client certificate per service; this
#: gateway applies them to its TLS-with-ALPN-h2 connections, docs/compatibility.md)
TLS_FIELD_PROTOCOLS = ("https", "tls", "grpcs")


def _tls_only(field: str) -> Any:
    return conditional("protocol", {"not_one_of": TLS_FIELD_PROTOCOLS}, field, {"eq": NULL})


SCHEMA = Schema(
    "services",
    [
        ("id", typedefs.uuid),
        ("created_at", typedefs.auto_timestamp_s),
        ("updated_at", typedefs.auto_timestamp_s),
        ("name", typedefs.utf8_name),
        (
            "retries",
            Field(
                "integer",
                default=5,
                between=(0, 32767),
                description="The number of retries to execute upon failure to proxy.",
            ),
        ),
        ("protocol", typedefs.protocol(required=True, default=DEFAULT_PROTOCOL)),
        ("host", typedefs.host(required=True)),
        ("port", typedefs.port(required=True, default=DEFAULT_PORT)),
        ("path", typedefs.path),
        ("connect_timeout", nonzero_timeout(default=60000)),
        ("write_timeout", nonzero_timeout(default=60000)),
        ("read_timeout", nonzero_timeout(default=60000)),
        ("tags", typedefs.tags),
        (
            "client_certificate",
            Field(
                "foreign",
                reference="certificates",
                description="Client certificate for the TLS handshake to the upstream.",
            ),
        ),
        ("tls_verify", Field("boolean", description="Verify the upstream certificate; null means the global setting.")),
        (
            "tls_verify_depth",
            Field(
                "integer",
                default=NULL,
                between=(0, 64),
                description="Maximum chain depth when verifying the upstream certificate.",
            ),
        ),
        (
            "ca_certificates",
            Field(
                "array",
                elements=Field("string", uuid=True),
                description="CA certificate ids forming the upstream trust store.",
            ),
        ),
        ("enabled", Field("boolean", required=True, default=True, description="Whether the Service is active.")),
    ],
    endpoint_key="name",
    entity_checks=(
        conditional("protocol", {"one_of": ("tcp", "tls", "udp", "grpc", "grpcs")}, "path", {"eq": NULL}),
        _tls_only("client_certificate"),
        _tls_only("tls_verify"),
        _tls_only("tls_verify_depth"),
        _tls_only("ca_certificates"),
    ),
    shorthand_fields=(("url", Field("string"), expand_url),),
    description="An upstream service: protocol, host, port, path, timeouts and upstream TLS settings.",
)
