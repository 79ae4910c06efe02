"""Upstream TLS (Kong's layers 3 and 4): the per-service profile and its cached context.

Theory of operation
-------------------
Everything expensive happens when a snapshot is built. ``UpstreamTlsCompiler`` turns one service row into an
``UpstreamTlsProfile`` by Kong's precedence rules (``kong/runloop/upstream_ssl.lua`` plus nginx defaults):

==================  ===================================================  =============================================
setting             service value                                        otherwise
==================  ===================================================  =============================================
client certificate  ``service.client_certificate``                       the ``upstreams`` entity named like the
                                                                         service host, then ``client_ssl`` +
                                                                         ``client_ssl_cert``/``_key`` (leaf + chain)
verify              ``service.tls_verify`` (true/false)                  ``proxy_ssl_verify`` (default off)
trust store         ``service.ca_certificates`` (*replaces* the store)   ``proxy_ssl_trusted_certificate`` (a PEM
                                                                         file or ``system``; default: empty)
depth               ``service.tls_verify_depth``                         ``proxy_ssl_verify_depth`` (default 1)
==================  ===================================================  =============================================

The profile carries one ``SSL.Context``, shared by every profile with the same (depth, trusted CA set, client
certificate) *content* (``ContextCache``): OpenSSL contexts are costly to build and hold the trust store, so a
snapshot rebuild that changes nothing TLS-related reuses them. The context always verifies with
``RECORD_AND_ACCEPT`` (the handshake completes, every error is recorded) and the verdict is applied after the
handshake by ``TlsSession`` exactly like nginx (``SSL_get_verify_result`` then ``X509_check_host``): that is why
``verify`` is not part of the context identity but is part of the profile's.

``UpstreamTlsProfile.identity`` is the content-based TLS identity that, with the peer address and the upstream
host, keys both the keepalive pool and the session cache: raw ``tls_verify`` (None and False distinct) and the
effective verify, the depth, the digest of the trusted CA set (order-insensitive), the digest of the client
certificate chain actually used (whichever level supplied it). Editing a CA's or a certificate's PEM in place
changes a digest, so no connection or session made under the old content is ever reused.

Per request nothing here runs: the connector (``connect.py``) uses the compiled profile when it opens a connection.

Failure policy (style lesson 13, fail closed): problems that Kong logs per request and then proceeds with are
kept as ``notices`` on the profile and logged by the proxy for each request with the request context:

- a ``ca_certificates`` id that does not exist: CRIT ``unable to get upstream TLS CA store, err: CA Certificate
  '<id>' does not exist``; the store is left alone (the global one applies), as in Kong. Verification, when on,
  then still fails closed against that store.
- a client certificate that cannot be found or applied: ERR ``unable to fetch/apply upstream client TLS certificate
  <id>: <err>``; the connection goes on without a certificate (the upstream decides), but unlike Kong the verify,
  depth and CA settings are still applied (Kong returns early and skips them).

A global ``client_ssl_cert`` or ``proxy_ssl_trusted_certificate`` that cannot be read raises ``ConfigError``: the
build fails (start-up stops with the message; a rebuild keeps the previous snapshot), as nginx refuses to start.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any, Final, cast

from cryptography import x509
from OpenSSL import SSL

from gateway.entities.index import foreign_id, index_of
from gateway.settings import Settings
from gateway.tls.engine.verify_codes import RECORD_AND_ACCEPT
from gateway.tls.engine.x509 import PemError, TrustStore, load_pem_chain
from gateway.tls.trace import Origin, Sourced
from gateway.tls.upstream.globals import UpstreamTlsGlobals
from gateway.tls.upstream.material import ClientCertificate, client_certificate_from_row, sorted_unique, with_source
from gateway.tls.upstream.origins import GLOBAL_DEFAULTS, ProfileOrigins, origin_of_global

__all__ = [
    "CIPHERS",
    "CONTEXTS",
    "TLS_PROTOCOLS",
    "ContextCache",
    "UpstreamTlsCompiler",
    "UpstreamTlsProfile",
    "identity_label",
]

#: Service protocols that speak TLS to the upstream (``tls`` is the stream subsystem; same client side).
TLS_PROTOCOLS: Final = frozenset({"https", "tls", "grpcs"})
#: Kong's template: ``proxy_ssl_conf_command CipherString DEFAULT:@SECLEVEL=0`` (old upstreams keep working).
CIPHERS: Final = b"DEFAULT:@SECLEVEL=0"

NO_CERT_DIGEST: Final = ""


# ----------------------------------------------------------------------------------------------------------
# Values
# ----------------------------------------------------------------------------------------------------------


class UpstreamTlsProfile:
    """Everything the TLS connector needs for one service, compiled once per snapshot.

    Attributes:
        context: the shared ``SSL.Context`` (verify callback and depth, trust store, client certificate).
        verify: whether a failed verification or host check fails the connection.
        verify_raw: ``service.tls_verify`` as stored (None = "use the global"), kept distinct in the identity.
        depth: the effective verify depth.
        trust_digest: content digest of the trusted CA set ("" for an empty store, "system+..." for the system).
        client_cert: the ``ClientCertificate`` actually used, or None.
        session_reuse: ``proxy_ssl_session_reuse``.
        identity: the hashable TLS identity (see the module docstring).
        notices: ``(level, message)`` pairs the proxy logs for every request using this profile (Kong's per-request
            access-phase lines); empty in the normal case.
        origins: where each value came from (``ProfileOrigins``), for the decision records and the Admin API.
    """

    __slots__ = (
        "client_cert",
        "context",
        "depth",
        "identity",
        "notices",
        "origins",
        "session_reuse",
        "trust_digest",
        "verify",
        "verify_raw",
    )

    def __init__(
        self,
        context: SSL.Context,
        *,
        verify: bool,
        verify_raw: bool | None,
        depth: int,
        trust_digest: str,
        client_cert: ClientCertificate | None,
        session_reuse: bool,
        notices: tuple[tuple[str, str], ...] = (),
        origins: ProfileOrigins | None = None,
    ) -> None:
        self.context = context
        self.verify = verify
        self.verify_raw = verify_raw
        self.depth = depth
        self.trust_digest = trust_digest
        self.client_cert = client_cert
        self.session_reuse = session_reuse
        self.notices = notices
        self.origins = origins if origins is not None else _unsourced(verify_raw, client_cert)
        cert_digest = client_cert.digest if client_cert is not None else NO_CERT_DIGEST
        self.identity: tuple[Hashable, ...] = (verify_raw, verify, depth, trust_digest, cert_digest)

    def __repr__(self) -> str:
        return f"UpstreamTlsProfile({identity_label(self.identity)})"


def _unsourced(verify_raw: bool | None, cert: ClientCertificate | None) -> ProfileOrigins:
    """Origins for a profile built without a compiler (tests): the service's when it set them, else ``default``."""
    default = Sourced(Origin.DEFAULT)
    verify = Sourced(Origin.SERVICE) if verify_raw is not None else default
    cert_from = Sourced(Origin.NONE)
    if cert is not None:
        local = cert.source in ("service", "upstream")
        cert_from = Sourced(Origin(cert.source)) if local else Sourced(Origin.GLOBAL, "client_ssl_cert")
    return ProfileOrigins(cert_from, None, verify, default, default)


def identity_label(identity: Sequence[Hashable]) -> str:
    """A profile identity as Kong's pool-name tail ``<verify>|<depth>|<CAs>|<client cert>`` (debug logs only).

    ``verify`` is ``1``/``0`` as in Kong and ``-`` for null (kept distinct here); the CA set and the client
    certificate are shown as the first 16 hex digits of their content digests where Kong shows entity ids.
    """
    verify_raw, _verify, depth, trust_digest, cert_digest = identity
    verify = "-" if verify_raw is None else ("1" if verify_raw else "0")
    return f"{verify}|{depth}|{str(trust_digest)[:16]}|{str(cert_digest)[:16]}"


def _build_context(depth: int, trust: TrustStore, cert: ClientCertificate | None) -> SSL.Context:
    """One client context. Verification always records and accepts (the verdict comes after the handshake, as in
    nginx), so ``verify`` is not a property of the context and null/false/true services can share one."""
    ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
    ctx.set_options(SSL.OP_NO_RENEGOTIATION | SSL.OP_NO_COMPRESSION)
    ctx.set_cipher_list(CIPHERS)
    ctx.set_verify(SSL.VERIFY_PEER, RECORD_AND_ACCEPT)
    ctx.set_verify_depth(depth)
    trust.install(ctx)  # a fresh context per trust set: this *is* Kong's SSL_set1_verify_cert_store (replace)
    if cert is not None:
        ctx.use_certificate(cert.chain[0])
        ctx.use_privatekey(cast(Any, cert.key))  # any key type cryptography loaded; OpenSSL checks it
        for extra in cert.chain[1:]:
            ctx.add_extra_chain_cert(extra)
        ctx.check_privatekey()
    return ctx


class ContextCache:
    """``SSL.Context`` objects by content identity ``(depth, trust digest, client cert digest)``.

    Shared across snapshots (builds run on the store's thread, hence the lock); ``retain`` drops the contexts the
    latest build no longer uses. A context that is dropped stays alive for the snapshots still holding it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._contexts: dict[tuple[int, str, str], SSL.Context] = {}

    def get(self, depth: int, trust: TrustStore, cert: ClientCertificate | None) -> SSL.Context:
        key = (depth, trust.digest, cert.digest if cert is not None else NO_CERT_DIGEST)
        with self._lock:
            ctx = self._contexts.get(key)
        if ctx is None:
            ctx = _build_context(depth, trust, cert)
            with self._lock:
                ctx = self._contexts.setdefault(key, ctx)
        return ctx

    def retain(self, contexts: Iterable[SSL.Context]) -> None:
        keep = {id(c) for c in contexts}
        with self._lock:
            self._contexts = {k: c for k, c in self._contexts.items() if id(c) in keep}

    def __len__(self) -> int:
        return len(self._contexts)


#: The process-wide context cache (contexts are immutable once built, so sharing them is safe).
CONTEXTS = ContextCache()


# ----------------------------------------------------------------------------------------------------------
# Compiling profiles from rows
# ----------------------------------------------------------------------------------------------------------


class UpstreamTlsCompiler:
    """Builds the ``UpstreamTlsProfile`` of each TLS service of one configuration (one snapshot build).

    Args:
        settings: the global knobs (``client_ssl*``, ``proxy_ssl_*``, ``proxy_ssl_session_reuse``).
        config: entity name -> rows, as exported by the store, ideally the build's ``ConfigIndex``
            (``certificates``, ``ca_certificates``, ``upstreams`` are read here).
        contexts: the context cache (the process-wide one by default).
        globals_: the settings-wide trust store and client certificate, loaded once per settings load; read from
            ``settings`` here when not given (tests, one-off builds).

    Raises:
        ConfigError: the global client certificate or trusted-certificate file cannot be loaded.
    """

    def __init__(
        self,
        settings: Settings,
        config: Mapping[str, Sequence[Mapping[str, Any]]],
        contexts: ContextCache = CONTEXTS,
        globals_: UpstreamTlsGlobals | None = None,
    ) -> None:
        self._settings = settings
        self._contexts = contexts
        index = index_of(config)
        self._certificates = index.by_id("certificates")
        self._ca_rows = index.by_id("ca_certificates")
        self._upstreams = index.by_field("upstreams", "name")
        self._ca_cache: dict[str, list[x509.Certificate]] = {}
        self._cert_cache: dict[str, ClientCertificate | str] = {}
        self._stores: dict[str, TrustStore] = {}
        self._used: list[SSL.Context] = []
        tls = globals_ if globals_ is not None else UpstreamTlsGlobals(settings)
        self._global_trust = tls.proxy_trust
        self._global_cert = tls.client_certificate
        configured = settings.proxy_ssl_trusted_certificate is not None
        self._global_trust_from = (
            Sourced(Origin.GLOBAL, "proxy_ssl_trusted_certificate") if configured else Sourced(Origin.DEFAULT)
        )

    # -- per service --------------------------------------------------------------------------------------------

    def _client_certificate(self, cert_id: str) -> ClientCertificate | str:
        """The entity's certificate (``cert``/``key``; the alternate pair is for serving only), or an error text."""
        cached = self._cert_cache.get(cert_id)
        if cached is not None:
            return cached
        row = self._certificates.get(cert_id)
        result: ClientCertificate | str
        if row is None:
            result = f"unable to fetch upstream client TLS certificate {cert_id}: certificate not found"
        else:
            try:
                result = client_certificate_from_row(row, "", cert_id)
            except (PemError, KeyError, TypeError) as exc:
                result = f"unable to apply upstream client TLS certificate {cert_id}: {exc}"
        self._cert_cache[cert_id] = result
        return result

    def _ca_store(self, ca_ids: Sequence[Any]) -> TrustStore | str:
        """The store made of exactly these CAs, or Kong's error text for the first one missing."""
        certs: list[x509.Certificate] = []
        for ref in ca_ids:
            ca_id = str(ref)
            found = self._ca_cache.get(ca_id)
            if found is None:
                row = self._ca_rows.get(ca_id)
                if row is None:
                    return f"CA Certificate '{ca_id}' does not exist"
                try:
                    found = load_pem_chain(row["cert"])
                except PemError as exc:
                    return f"CA Certificate '{ca_id}': {exc}"
                self._ca_cache[ca_id] = found
            certs.extend(found)
        store = TrustStore(sorted_unique(certs))
        # one TrustStore object per content, so identical sets share the built OpenSSL store
        return self._stores.setdefault(store.digest, store)

    def _client_cert_for(
        self, row: Mapping[str, Any], notices: list[tuple[str, str]]
    ) -> tuple[ClientCertificate | None, Sourced, str | None]:
        """Kong's precedence: the service's certificate, else its upstream entity's, else ``client_ssl_cert``;
        with where it stopped and the entity id asked for (an unusable one adds its notice and sends none)."""
        service_cert_id = foreign_id(row.get("client_certificate"))
        cert_id: str | None
        if service_cert_id is not None:
            cert_id, source = service_cert_id, "service"
        else:
            upstream = self._upstreams.get(str(row.get("host")))
            cert_id = foreign_id(upstream.get("client_certificate")) if upstream is not None else None
            source = "upstream"
        if cert_id is None:
            found_global = self._global_cert
            if found_global is None:
                return None, Sourced(Origin.NONE), None
            return found_global, Sourced(Origin.GLOBAL, "client_ssl_cert"), None
        found = self._client_certificate(cert_id)
        if isinstance(found, str):
            notices.append(("error", found))
            return None, Sourced(Origin(source)), cert_id
        return with_source(found, source), Sourced(Origin(source)), cert_id

    def profile(self, row: Mapping[str, Any]) -> UpstreamTlsProfile | None:
        """The profile of a service row, or None when its protocol does not speak TLS upstream."""
        if (row.get("protocol") or "http") not in TLS_PROTOCOLS:
            return None
        s = self._settings
        notices: list[tuple[str, str]] = []

        cert, cert_from, cert_id = self._client_cert_for(row, notices)

        verify_raw = row.get("tls_verify")
        verify = bool(verify_raw) if verify_raw is not None else s.proxy_ssl_verify
        verify_from = (
            Sourced(Origin.SERVICE)
            if verify_raw is not None
            else origin_of_global("proxy_ssl_verify", s.proxy_ssl_verify, GLOBAL_DEFAULTS["proxy_ssl_verify"])
        )
        depth_raw = row.get("tls_verify_depth")
        depth = int(depth_raw) if depth_raw is not None else s.proxy_ssl_verify_depth
        depth_from = (
            Sourced(Origin.SERVICE)
            if depth_raw is not None
            else origin_of_global("proxy_ssl_verify_depth", depth, GLOBAL_DEFAULTS["proxy_ssl_verify_depth"])
        )

        trust = self._global_trust
        trust_from = self._global_trust_from
        trust_ids: tuple[str, ...] = ()
        ca_ids = row.get("ca_certificates")
        if ca_ids is not None:
            store = self._ca_store(ca_ids)
            if isinstance(store, str):
                notices.append(("crit", f"unable to get upstream TLS CA store, err: {store}"))
            else:
                trust, trust_from, trust_ids = store, Sourced(Origin.SERVICE), tuple(str(i) for i in ca_ids)
        origins = ProfileOrigins(
            cert_from,
            cert_id,
            verify_from,
            depth_from,
            trust_from,
            trust_ids,
            trust_from.origin is Origin.GLOBAL and trust.system,
        )

        context = self._contexts.get(depth, trust, cert)
        self._used.append(context)
        return UpstreamTlsProfile(
            context,
            verify=verify,
            verify_raw=None if verify_raw is None else bool(verify_raw),
            depth=depth,
            trust_digest=trust.digest if (trust.certificates or trust.system) else "",
            client_cert=cert,
            session_reuse=s.proxy_ssl_session_reuse,
            notices=tuple(notices),
            origins=origins,
        )

    def finish(self) -> None:
        """The build is complete: forget cached contexts nothing uses any more."""
        self._contexts.retain(self._used)
