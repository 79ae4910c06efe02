"""Where each effective upstream TLS value came from: decided once by ``UpstreamTlsCompiler`` and kept on the
compiled profile, for the decision records and the Admin API (``tls.upstream.trace``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.tls.trace import Origin, Sourced

__all__ = ["GLOBAL_DEFAULTS", "ProfileOrigins", "origin_of_global"]

#: Kong's defaults of the global settings whose origin we report (a global equal to its default reads ``default``)
GLOBAL_DEFAULTS: dict[str, Any] = {"proxy_ssl_verify": False, "proxy_ssl_verify_depth": 1}


def origin_of_global(setting: str, value: Any, default: Any) -> Sourced:
    """``global setting <name>``, or ``default`` while the setting holds Kong's default value."""
    return Sourced(Origin.DEFAULT) if value == default else Sourced(Origin.GLOBAL, setting)


@dataclass(frozen=True, slots=True)
class ProfileOrigins:
    """Where each value of an ``UpstreamTlsProfile`` came from (decided by the compiler, once per snapshot).

    Attributes:
        client_cert: ``service``, ``upstream``, ``global setting client_ssl_cert`` or ``none``.
        client_cert_id: the ``certificates`` id asked for (also when it could not be used; see ``notices``).
        verify / depth: ``service``, ``global setting proxy_ssl_verify[_depth]`` or ``default``.
        trust: ``service`` (its ``ca_certificates``), ``global setting proxy_ssl_trusted_certificate`` or
            ``default`` (the empty store).
        trust_ids: the service's ``ca_certificates`` ids in use (empty unless ``trust`` is ``service``).
        trust_system: the global store is the system's (``proxy_ssl_trusted_certificate = system``).
    """

    client_cert: Sourced
    client_cert_id: str | None
    verify: Sourced
    depth: Sourced
    trust: Sourced
    trust_ids: tuple[str, ...] = ()
    trust_system: bool = False

    @property
    def trust_label(self) -> str:
        """``ca_certificates:<id>,<id>``, ``system``, ``proxy_ssl_trusted_certificate`` or ``empty``."""
        if self.trust.origin is Origin.SERVICE:
            return "ca_certificates:" + ",".join(self.trust_ids)
        if self.trust.origin is Origin.GLOBAL:
            return "system" if self.trust_system else "proxy_ssl_trusted_certificate"
        return "empty"
