"""Config schemas of the plugins this gateway runs, keyed by plugin name, and which of them are enabled.

Two sets, as Kong has them:

- *registered* (``register_plugin``): the plugins this gateway has a handler for (Kong: the plugins installed).
  ``mtls-auth``, ``tls-metadata-headers`` and ``acl`` are registered here because the store must see their schemas
  (``mtls-auth``'s ``ca_certificates`` references) without importing the runtime.
- *enabled* (``enable_plugins``, from the ``plugins`` setting, default ``bundled`` = every registered one;
  Kong: ``kong.configuration.loaded_plugins``). Only an enabled plugin has a subschema (``get_plugin``), so a
  plugin entity naming any other plugin fails validation with Kong's ``plugin 'x' not enabled; add it to the
  'plugins' configuration property``, followed by which plugins this gateway runs (``not_enabled_message``),
  on every path that writes plugins: the Admin API, ``POST /config``, the declarative file, ``config parse``
  and ``db_import``.

Why refuse what Kong might run: the gateway stands in for Kong in CI. A plugin accepted here and never run (an
``acl`` that allows everyone, a ``rate-limiting`` that never limits) lets a test suite pass here and fail on
Kong; a refusal names the problem at once. The enabled set is process-wide, as Kong's loaded plugins are: it is
set once at start (``gateway start``, ``config db_import``) from the settings, before anything is validated.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from gateway.entities import typedefs
from gateway.entities.entity_checks import Check, at_least_one_of, only_one_of
from gateway.entities.schema import Field, Schema
from gateway.entities.values import NULL

__all__ = [
    "ACL",
    "MTLS_AUTH",
    "PROMETHEUS",
    "TLS_METADATA_HEADERS",
    "PluginSpec",
    "enable_plugins",
    "enabled_plugins",
    "get_plugin",
    "not_enabled_message",
    "register_plugin",
    "registered_plugins",
    "runs_note",
]


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
    entity_checks: tuple[Check, ...] = ()
    """Checks over the whole plugin entity (Kong's plugin-schema ``entity_checks``, fields named ``config.x``)."""

    @property
    def references_ca_certificates(self) -> bool:
        """True when ``config.ca_certificates`` holds CA ids (deleting such a CA is refused)."""
        return self.config.get_field("ca_certificates") is not None


_REGISTRY: dict[str, PluginSpec] = {}
_ENABLED: frozenset[str] | None = None
"""The ``plugins`` setting resolved to names; None means ``bundled`` (every registered plugin)."""


def register_plugin(spec: PluginSpec) -> None:
    """Make ``spec.name`` a plugin this gateway runs (idempotent; a later registration replaces an earlier one)."""
    _REGISTRY[spec.name] = spec


def enable_plugins(names: Iterable[str] | None) -> None:
    """Enable exactly ``names`` (the resolved ``plugins`` setting), or every registered plugin with None.

    Raises:
        ValueError: a name that is not registered (``Settings`` refuses such a ``plugins`` value first).
    """
    global _ENABLED
    if names is None:
        _ENABLED = None
        return
    wanted = frozenset(names)
    unknown = sorted(wanted - set(_REGISTRY))
    if unknown:
        raise ValueError(f"plugins not available in this gateway: {', '.join(unknown)} ({runs_note()})")
    _ENABLED = wanted


def get_plugin(name: object) -> PluginSpec | None:
    """The spec of ``name`` when it is registered and enabled, else None (the entity is then refused)."""
    if not isinstance(name, str) or (_ENABLED is not None and name not in _ENABLED):
        return None
    return _REGISTRY.get(name)


def registered_plugins() -> list[str]:
    """The plugins this gateway runs, whether enabled or not, sorted."""
    return sorted(_REGISTRY)


def enabled_plugins() -> list[str]:
    """The plugins a plugin entity may name (``GET /plugins/enabled``), sorted."""
    return sorted(_REGISTRY if _ENABLED is None else _ENABLED & set(_REGISTRY))


def runs_note() -> str:
    """``this gateway runs only acl, mtls-auth, tls-metadata-headers``: what every refusal of a plugin name adds."""
    return f"this gateway runs only {', '.join(registered_plugins())}"


def not_enabled_message(name: str) -> str:
    """Kong's ``subschema_error`` of ``plugins.lua``, with which plugins this gateway runs after it."""
    return f"plugin '{name}' not enabled; add it to the 'plugins' configuration property ({runs_note()})"


def _never_used(reason: str) -> Callable[[Any], str | None]:
    """A validator for a config field this gateway accepts only at its default: any other value would be ignored."""

    def check(value: Any) -> str | None:
        if value is None or value == []:
            return None
        return f"not supported by this gateway ({reason}); leave it unset"

    return check


def _never_true(reason: str) -> Callable[[Any], str | None]:
    """A validator for a flag this gateway can only leave off: turning it on would change nothing."""

    def check(value: Any) -> str | None:
        if value is True:
            return f"not supported by this gateway ({reason}); leave it false"
        return None

    return check


_HTTP_ONLY = "OCSP responders and CRLs are fetched over plain http only, so an https proxy would never be used"

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
            ("https_proxy_host", typedefs.host(custom_validator=_never_used(_HTTP_ONLY))),
            ("https_proxy_port", typedefs.port(custom_validator=_never_used(_HTTP_ONLY))),
            ("allow_partial_chain", Field("boolean", required=True, default=False)),
            ("send_ca_dn", Field("boolean", default=False)),
            ("ssl_verify", Field("boolean", default=True)),
            (
                "san_dirname_matcher",
                Field(
                    "array",
                    default=[],
                    elements=Field("string"),
                    custom_validator=_never_used("directory names in the SAN are not matched"),
                ),
            ),
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

ACL = PluginSpec(
    "acl",
    Schema(
        "acl.config",
        [
            (
                "allow",
                Field(
                    "array",
                    elements=Field("string"),
                    description="Group names allowed to consume the service or route (or use deny).",
                ),
            ),
            (
                "deny",
                Field(
                    "array",
                    elements=Field("string"),
                    description="Group names not allowed to consume the service or route (or use allow).",
                ),
            ),
            ("hide_groups_header", Field("boolean", required=True, default=False)),
            ("always_use_authenticated_groups", Field("boolean", required=True, default=False)),
        ],
    ),
    no_consumer=True,
    entity_checks=(only_one_of("config.allow", "config.deny"), at_least_one_of("config.allow", "config.deny")),
)

register_plugin(ACL)


PROMETHEUS = PluginSpec(
    "prometheus",
    Schema(
        "prometheus.config",
        [
            # Kong 3.x's flags, all off by default; ai_metrics and wasm_metrics have nothing to count here, so only
            # their default is accepted
            ("per_consumer", Field("boolean", default=False)),
            ("status_code_metrics", Field("boolean", default=False)),
            (
                "ai_metrics",
                Field("boolean", default=False, custom_validator=_never_true("there are no AI plugins here")),
            ),
            ("latency_metrics", Field("boolean", default=False)),
            ("bandwidth_metrics", Field("boolean", default=False)),
            ("upstream_health_metrics", Field("boolean", default=False)),
            (
                "wasm_metrics",
                Field("boolean", default=False, custom_validator=_never_true("there are no Wasm filters here")),
            ),
        ],
    ),
)

register_plugin(PROMETHEUS)
