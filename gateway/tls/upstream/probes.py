"""The TLS side of active ``https`` health checks: which trust store, depth and client certificate a probe uses.

Kong's health checker opens its probes with Lua cosockets, not with nginx's proxy module, so the rules differ from
the proxied traffic's (``gateway.tls.upstream.profile``; reference section 7). Users find this split surprising:

==================  ======================================================  =========================================
setting             health-check probe                                      proxied request (for comparison)
==================  ======================================================  =========================================
trust store         ``lua_ssl_trusted_certificate`` (``system`` default,    ``service.ca_certificates``, else
                    and/or PEM files)                                       ``proxy_ssl_trusted_certificate``
depth               ``lua_ssl_verify_depth`` (default 1)                    ``service.tls_verify_depth``, else 1
verify              ``healthchecks.active.https_verify_certificate``        ``service.tls_verify``, else off
                    (default **on**)
client certificate  ``upstream.client_certificate``, else the global        ``service.client_certificate`` first
                    ``client_ssl_cert`` when ``client_ssl = on``; never
                    the service's
SNI                 ``https_sni``, else ``upstream.host_header``, else the  ``$upstream_host`` (no SNI for IPs)
                    target's name (an IP target sends its IP)
==================  ======================================================  =========================================

``HealthcheckTlsCompiler`` runs with each snapshot build (on the store's thread: files are read there, never on the
event loop) and gives each upstream whose active checks are ``https`` a ``ProbeTls``: a context from a cache of its
own (the proxy's ``ContextCache.retain`` must not drop it), plus the notices to log.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from OpenSSL import SSL

from gateway.entities.index import foreign_id, index_of
from gateway.settings import Settings
from gateway.tls.engine.x509 import PemError
from gateway.tls.upstream.globals import UpstreamTlsGlobals
from gateway.tls.upstream.material import ClientCertificate, client_certificate_from_row
from gateway.tls.upstream.profile import ContextCache

__all__ = ["PROBE_CONTEXTS", "HealthcheckTlsCompiler", "ProbeTls"]

#: contexts of health-check probes, by content (depth, trust set, client certificate)
PROBE_CONTEXTS = ContextCache()


class ProbeTls:
    """What an ``https`` probe of one upstream uses.

    Attributes:
        context: the ``SSL.Context`` (records verification errors; the verdict is applied after the handshake).
        client_cert: the client certificate presented, or None.
        identity: a hashable content identity (a checker is reconfigured only when it changes).
        notices: ``(level, message)`` lines to log once when the checker is (re)configured.
    """

    __slots__ = ("client_cert", "context", "identity", "notices")

    def __init__(
        self,
        context: SSL.Context,
        client_cert: ClientCertificate | None,
        identity: tuple[Any, ...],
        notices: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.context = context
        self.client_cert = client_cert
        self.identity = identity
        self.notices = notices


class HealthcheckTlsCompiler:
    """``ProbeTls`` for the upstreams of one configuration.

    Raises:
        ConfigError: ``lua_ssl_trusted_certificate`` or the global client certificate cannot be loaded (when an
        upstream with ``https`` checks first needs them).
    """

    def __init__(
        self,
        settings: Settings,
        config: Mapping[str, Sequence[Mapping[str, Any]]],
        contexts: ContextCache = PROBE_CONTEXTS,
        globals_: UpstreamTlsGlobals | None = None,
    ) -> None:
        self._settings = settings
        self._contexts = contexts
        self._certificates = index_of(config).by_id("certificates")
        #: the trust store and global client certificate, read on first use (only https checks need them)
        self._globals = globals_ if globals_ is not None else UpstreamTlsGlobals(settings)
        self._used: list[SSL.Context] = []

    def _entity_cert(self, cert_id: str) -> ClientCertificate | str:
        row = self._certificates.get(cert_id)
        if row is None:
            return f"unable to fetch upstream client TLS certificate {cert_id}: certificate not found"
        try:
            return client_certificate_from_row(row, "upstream", cert_id)
        except (PemError, KeyError, TypeError) as exc:
            return f"unable to fetch upstream client TLS certificate {cert_id}: {exc}"

    def profile(self, upstream: Mapping[str, Any]) -> ProbeTls:
        """The probe TLS of an upstream row (the snapshot build asks only for upstreams with ``https`` checks)."""
        notices: list[tuple[str, str]] = []
        cert: ClientCertificate | None
        cert_id = foreign_id(upstream.get("client_certificate"))
        if cert_id is not None:
            found = self._entity_cert(cert_id)
            if isinstance(found, str):
                notices.append(("error", found))
                cert = None
            else:
                cert = found
        else:
            cert = self._globals.client_certificate
        trust = self._globals.lua_trust
        depth = self._settings.lua_ssl_verify_depth
        context = self._contexts.get(depth, trust, cert)
        self._used.append(context)
        identity = (depth, trust.digest, cert.digest if cert is not None else "")
        return ProbeTls(context, cert, identity, tuple(notices))

    def finish(self) -> None:
        """Forget probe contexts no upstream of this build uses."""
        self._contexts.retain(self._used)
