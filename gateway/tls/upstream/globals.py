"""The settings-wide inputs of upstream TLS, read from their files once per settings load.

``proxy_ssl_trusted_certificate`` (the proxied traffic's global trust store), ``lua_ssl_trusted_certificate`` (the
health-check probes' one) and ``client_ssl_cert``/``_key`` (the global client certificate) are nginx directives and
Lua settings: Kong reads them when nginx starts or reloads, never per request nor per configuration change. So they
are loaded here, each on first use, and the object is kept for as long as the settings are (the runtime builds one
per start and SIGHUP, ``gateway.runtime.building``): an Admin API write, which rebuilds the snapshot, reads no file.

A value that cannot be loaded raises ``ConfigError`` each time it is asked for (nothing is cached then), so the
build fails as it did, and start-up stops with the setting's name.
"""

from __future__ import annotations

from cryptography import x509

from gateway.settings import ConfigError, Settings
from gateway.tls.engine.x509 import PemError, TrustStore, key_matches_cert, load_pem_chain, load_pem_private_key
from gateway.tls.pem_settings import read_pem_setting
from gateway.tls.upstream.material import ClientCertificate, sorted_unique

__all__ = ["UpstreamTlsGlobals", "load_global_client_certificate"]

_UNLOADED: object = object()


def load_global_client_certificate(settings: Settings) -> ClientCertificate | None:
    """``client_ssl = on`` + ``client_ssl_cert``/``_key`` (path, inline or base64 PEM), or None when off.

    Raises:
        ConfigError: the files cannot be read or parsed, or the key does not match (nginx would not start).
    """
    if not settings.client_ssl or not settings.client_ssl_cert or not settings.client_ssl_cert_key:
        return None
    try:
        chain = load_pem_chain(read_pem_setting("client_ssl_cert", settings.client_ssl_cert))
        key = load_pem_private_key(read_pem_setting("client_ssl_cert_key", settings.client_ssl_cert_key))
    except PemError as exc:
        raise ConfigError(f"client_ssl_cert: {exc}") from None
    if not key_matches_cert(key, chain[0]):
        raise ConfigError("client_ssl_cert_key does not match client_ssl_cert")
    return ClientCertificate(chain, key, "global", None)


def _proxy_trust(settings: Settings) -> TrustStore:
    """``proxy_ssl_trusted_certificate``: PEM files (or inline/base64 PEM), comma separated, or ``system``."""
    value = settings.proxy_ssl_trusted_certificate
    if value is None:
        return TrustStore(())
    if value.strip() == "system":
        return TrustStore.system_store()
    certs: list[x509.Certificate] = []
    for part in value.split(","):
        part = part.strip()
        if part == "system":
            raise ConfigError("proxy_ssl_trusted_certificate: 'system' cannot be combined with files")
        try:
            certs.extend(load_pem_chain(read_pem_setting("proxy_ssl_trusted_certificate", part)))
        except PemError as exc:
            raise ConfigError(f"proxy_ssl_trusted_certificate: {exc}") from None
    return TrustStore(sorted_unique(certs))


def _lua_trust(settings: Settings) -> TrustStore:
    """``lua_ssl_trusted_certificate``: ``system`` and/or PEM files (the health-check probes' trust)."""
    system = False
    certs = []
    for entry in settings.lua_ssl_trusted_certificate:
        entry = entry.strip()
        if not entry:
            continue
        if entry == "system":
            system = True
            continue
        try:
            certs.extend(load_pem_chain(read_pem_setting("lua_ssl_trusted_certificate", entry)))
        except PemError as exc:
            raise ConfigError(f"lua_ssl_trusted_certificate: {exc}") from None
    return TrustStore(certs, system=system)


class UpstreamTlsGlobals:
    """The global trust stores and client certificate of one settings load, each read on first use."""

    __slots__ = ("_client_certificate", "_lua_trust", "_proxy_trust", "settings")

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._proxy_trust: TrustStore | None = None
        self._lua_trust: TrustStore | None = None
        self._client_certificate: object = _UNLOADED

    @property
    def proxy_trust(self) -> TrustStore:
        """The proxied traffic's global trust store (``proxy_ssl_trusted_certificate``; empty by default)."""
        if self._proxy_trust is None:
            self._proxy_trust = _proxy_trust(self.settings)
        return self._proxy_trust

    @property
    def lua_trust(self) -> TrustStore:
        """The health-check probes' trust store (``lua_ssl_trusted_certificate``; ``system`` by default)."""
        if self._lua_trust is None:
            self._lua_trust = _lua_trust(self.settings)
        return self._lua_trust

    @property
    def client_certificate(self) -> ClientCertificate | None:
        """``client_ssl_cert``/``_key`` when ``client_ssl = on``, else None."""
        found = self._client_certificate
        if found is _UNLOADED:
            found = self._client_certificate = load_global_client_certificate(self.settings)
        assert found is None or isinstance(found, ClientCertificate)
        return found

    def load_proxy_side(self) -> None:
        """Load what the proxied traffic's profiles need (the trust store, then the client certificate), as the
        ``UpstreamTlsCompiler`` does first thing: a master that builds no profile still refuses what a worker would.

        Raises:
            ConfigError: one of the files cannot be loaded.
        """
        _ = self.proxy_trust
        _ = self.client_certificate
