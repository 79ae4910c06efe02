"""Config schemas of the plugins this gateway knows, keyed by plugin name.

A plugin whose name is registered here gets its ``config`` validated and completed with defaults (Kong's
plugin subschemas); any other plugin name is accepted with its ``config`` stored as given (Kong would
answer ``plugin 'x' not enabled``; we accept it so that configurations written for a full Kong load, and
the runtime simply has no handler for them). Plugins register their own schema with ``register_plugin``;
``mtls-auth`` is registered here because the store must see its ``ca_certificates`` references.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.entities import typedefs
from gateway.entities.schema import NULL, Field, Schema

__all__ = ["MTLS_AUTH", "TLS_METADATA_HEADERS", "PluginSpec", "get_plugin", "register_plugin", "registered_plugins"]


@dataclass(frozen=True, slots=True)
class PluginSpec:
    """A known plugin: its ``config`` record, the default of its ``protocols``, and Kong's ``no_consumer``.

    ``no_consumer`` plugins (authentication plugins: they run before a consumer is known) refuse a
    ``consumer`` scope on write with ``consumer: value must be null``, as Kong's ``typedefs.no_consumer``.
    """

    name: str
    config: Schema
    protocols_default: tuple[str, ...] = typedefs.HTTP_PROTOCOLS
    no_consumer: bool = False

    @property
    def references_ca_certificates(self) -> bool:
        """True when ``config.ca_certificates`` holds CA ids (deleting such a CA is refused)."""
        return self.config.get_field("ca_certificates") is not None


_REGISTRY: dict[str, PluginSpec] = {}


def register_plugin(spec: PluginSpec) -> None:
    """Make ``spec.name`` a known plugin (idempotent; a later registration replaces an earlier one)."""
    _REGISTRY[spec.name] = spec


def get_plugin(name: object) -> PluginSpec | None:
    return _REGISTRY.get(name) if isinstance(name, str) else None


def registered_plugins() -> list[str]:
    return sorted(_REGISTRY)


MTLS_AUTH = PluginSpec(
    "mtls-auth",
    Schema(
        "mtls-auth.config",
        [
            (
                "ca_certificates",
                Field(
                    "array",
                    required=True,
                    elements=Field("string", uuid=True),
                    description="ids of the ca_certificates that may sign client certificates",
                ),
            ),
            ("skip_consumer_lookup", Field("boolean", required=True, default=False)),
            (
                "consumer_by",
                Field(
                    "array",
                    required=False,
                    default=["username", "custom_id"],
                    elements=Field("string", one_of=("username", "custom_id")),
                ),
            ),
            ("authenticated_group_by", Field("string", required=False, default="CN", one_of=("CN", "DN"))),
            ("anonymous", Field("string", default=NULL)),
            ("default_consumer", Field("string", default=NULL)),
            (
                "revocation_check_mode",
                Field("string", default="IGNORE_CA_ERROR", one_of=("SKIP", "IGNORE_CA_ERROR", "STRICT")),
            ),
            ("cache_ttl", Field("number", required=True, default=60)),
            ("cert_cache_ttl", Field("number", required=True, default=60000)),
            ("http_timeout", Field("number", default=30000)),
            ("http_proxy_host", typedefs.host),
            ("http_proxy_port", typedefs.port),
            ("https_proxy_host", typedefs.host),
            ("https_proxy_port", typedefs.port),
            ("allow_partial_chain", Field("boolean", required=True, default=False)),
            ("send_ca_dn", Field("boolean", default=False)),
            ("ssl_verify", Field("boolean", default=True)),
            ("san_dirname_matcher", Field("array", default=[], elements=Field("string"))),
            # beyond Kong: a maximum client chain depth; null means unlimited (Kong's behaviour)
            ("verify_depth", Field("integer", default=NULL, between=(0, 100))),
            # beyond Kong: CRLs (PEM) checked before the certificate's own OCSP/CRL URLs
            ("crls", Field("array", default=[], elements=Field("string"))),
        ],
    ),
    no_consumer=True,
)

register_plugin(MTLS_AUTH)

_HEADER_NAME = Field("string", required=True, match=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")

TLS_METADATA_HEADERS = PluginSpec(
    "tls-metadata-headers",
    Schema(
        "tls-metadata-headers.config",
        [
            ("inject_client_cert_details", Field("boolean", required=True, default=False)),
            ("client_cert_header_name", _HEADER_NAME(default="X-Client-Cert")),
            ("client_serial_header_name", _HEADER_NAME(default="X-Client-Cert-Serial")),
            ("client_cert_issuer_dn_header_name", _HEADER_NAME(default="X-Client-Cert-Issuer-DN")),
            ("client_cert_subject_dn_header_name", _HEADER_NAME(default="X-Client-Cert-Subject-DN")),
            ("client_cert_fingerprint_header_name", _HEADER_NAME(default="X-Client-Cert-Fingerprint")),
        ],
    ),
    protocols_default=("grpcs", "https"),
    no_consumer=True,
)

register_plugin(TLS_METADATA_HEADERS)
