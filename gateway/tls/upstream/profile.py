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

import base64
import binascii
import hashlib
import os
import threading
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any, Final, cast

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from OpenSSL import SSL

from gateway.settings import ConfigError, Settings
from gateway.tls.engine.verify_codes import RECORD_AND_ACCEPT
from gateway.tls.engine.x509 import (
    PemError,
    TrustStore,
    chain_digest,
    key_matches_cert,
    load_pem_chain,
    load_pem_private_key,
)

__all__ = [
    "CIPHERS",
    "CONTEXTS",
    "TLS_PROTOCOLS",
    "ClientCertificate",
    "ContextCache",
    "UpstreamTlsCompiler",
    "UpstreamTlsProfile",
    "identity_label",
]

#: Service protocols that speak TLS to the upstream (``tls`` is the stream subsystem; same client side).
TLS_PROTOCOLS: Final = frozenset({"https", "tls"})
#: Kong's template: ``proxy_ssl_conf_command CipherString DEFAULT:@SECLEVEL=0`` (old upstreams keep working).
CIPHERS: Final = b"DEFAULT:@SECLEVEL=0"

NO_CERT_DIGEST: Final = ""


# ----------------------------------------------------------------------------------------------------------
# Values
# ----------------------------------------------------------------------------------------------------------


class ClientCertificate:
    """A client certificate ready for a context: leaf + intermediates, key, and the chain's content digest.

    ``source`` is ``"service"``, ``"upstream"`` or ``"global"`` (where the precedence found it), ``entity_id`` the
    ``certificates`` id (None for the global one).
    """

    __slots__ = ("chain", "digest", "entity_id", "key", "source")

    def __init__(
        self, chain: Sequence[x509.Certificate], key: PrivateKeyTypes, source: str, entity_id: str | None
    ) -> None:
        self.chain = tuple(chain)
        self.key = key
        self.source = source
        self.entity_id = entity_id
        self.digest = chain_digest(self.chain)

    def __repr__(self) -> str:
        return f"ClientCertificate({self.source}, {self.entity_id}, {self.digest[:12]})"


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
    """

    __slots__ = (
        "client_cert",
        "context",
        "depth",
        "identity",
        "notices",
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
    ) -> None:
        self.context = context
        self.verify = verify
        self.verify_raw = verify_raw
        self.depth = depth
        self.trust_digest = trust_digest
        self.client_cert = client_cert
        self.session_reuse = session_reuse
        self.notices = notices
        cert_digest = client_cert.digest if client_cert is not None else NO_CERT_DIGEST
        self.identity: tuple[Hashable, ...] = (verify_raw, verify, depth, trust_digest, cert_digest)

    def __repr__(self) -> str:
        return f"UpstreamTlsProfile({identity_label(self.identity)})"


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


def read_pem_setting(key: str, value: str) -> bytes:
    """A PEM given in kong.conf: a path, the PEM itself, or base64 of it (Kong accepts the three).

    Raises:
        ConfigError: naming the key, when nothing PEM-shaped comes out.
    """
    if "-----BEGIN " in value:
        data = value.encode("utf-8", "surrogateescape")
    elif os.path.exists(value):
        try:
            with open(value, "rb") as handle:
                data = handle.read()
        except OSError as exc:
            raise ConfigError(f"{key}: failed loading {value}: {exc.strerror}") from None
    else:
        try:
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            data = b""
    if b"-----BEGIN " not in data:
        raise ConfigError(f"{key}: failed loading {value}")
    return data


def _sorted_unique(certs: Iterable[x509.Certificate]) -> list[x509.Certificate]:
    """CAs in a canonical order (by DER digest, duplicates removed): the trust digest ignores id order, as Kong's
    CA-store cache key sorts the ids."""
    by_digest: dict[str, x509.Certificate] = {}
    for cert in certs:
        by_digest[hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()] = cert
    return [by_digest[d] for d in sorted(by_digest)]


def foreign_id(ref: Any) -> str | None:
    """The id of a foreign key as rows carry it: ``{"id": ...}`` from the store, a bare id from older callers."""
    if ref is None:
        return None
    if isinstance(ref, Mapping):
        value = ref.get("id")
        return str(value) if value is not None else None
    return str(ref)


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


def client_certificate_from_row(row: Mapping[str, Any], source: str, cert_id: str) -> ClientCertificate:
    """A ``certificates`` row's ``cert``/``key`` as a client certificate (the alt pair is for serving only).

    Raises:
        PemError: unparsable PEM, or the key does not match the certificate (``KeyError``/``TypeError`` for a
        malformed row); callers turn it into Kong's ``unable to fetch/apply ...`` text.
    """
    chain = load_pem_chain(row["cert"])
    key = load_pem_private_key(row["key"])
    if not key_matches_cert(key, chain[0]):
        raise PemError("certificate does not match key")
    return ClientCertificate(chain, key, source, cert_id)


class UpstreamTlsCompiler:
    """Builds the ``UpstreamTlsProfile`` of each TLS service of one configuration (one snapshot build).

    Args:
        settings: the global knobs (``client_ssl*``, ``proxy_ssl_*``, ``proxy_ssl_session_reuse``).
        config: entity name -> rows, as exported by the store (``certificates``, ``ca_certificates``,
            ``upstreams`` are read here).
        contexts: the context cache (the process-wide one by default).

    Raises:
        ConfigError: the global client certificate or trusted-certificate file cannot be loaded.
    """

    def __init__(
        self,
        settings: Settings,
        config: Mapping[str, Sequence[Mapping[str, Any]]],
        contexts: ContextCache = CONTEXTS,
    ) -> None:
        self._settings = settings
        self._contexts = contexts
        self._certificates = {str(row["id"]): row for row in config.get("certificates", ())}
        self._ca_rows = {str(row["id"]): row for row in config.get("ca_certificates", ())}
        self._upstreams = {str(row["name"]): row for row in config.get("upstreams", ()) if row.get("name")}
        self._ca_cache: dict[str, list[x509.Certificate]] = {}
        self._cert_cache: dict[str, ClientCertificate | str] = {}
        self._stores: dict[str, TrustStore] = {}
        self._used: list[SSL.Context] = []
        self._global_trust = self._load_global_trust()
        self._global_cert = self._load_global_cert()

    # -- globals ------------------------------------------------------------------------------------------------

    def _load_global_trust(self) -> TrustStore:
        value = self._settings.proxy_ssl_trusted_certificate
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
        return TrustStore(_sorted_unique(certs))

    def _load_global_cert(self) -> ClientCertificate | None:
        return load_global_client_certificate(self._settings)

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
        store = TrustStore(_sorted_unique(certs))
        # one TrustStore object per content, so identical sets share the built OpenSSL store
        return self._stores.setdefault(store.digest, store)

    def profile(self, row: Mapping[str, Any]) -> UpstreamTlsProfile | None:
        """The profile of a service row, or None when its protocol does not speak TLS upstream."""
        if (row.get("protocol") or "http") not in TLS_PROTOCOLS:
            return None
        s = self._settings
        notices: list[tuple[str, str]] = []

        cert: ClientCertificate | None = None
        service_cert_id = foreign_id(row.get("client_certificate"))
        if service_cert_id is not None:
            found = self._client_certificate(service_cert_id)
            if isinstance(found, str):
                notices.append(("error", found))
            else:
                cert = _with_source(found, "service")
        else:
            upstream = self._upstreams.get(str(row.get("host")))
            upstream_cert_id = foreign_id(upstream.get("client_certificate")) if upstream is not None else None
            if upstream_cert_id is not None:
                found = self._client_certificate(upstream_cert_id)
                if isinstance(found, str):
                    notices.append(("error", found))
                else:
                    cert = _with_source(found, "upstream")
            else:
                cert = self._global_cert

        verify_raw = row.get("tls_verify")
        verify = bool(verify_raw) if verify_raw is not None else s.proxy_ssl_verify
        depth_raw = row.get("tls_verify_depth")
        depth = int(depth_raw) if depth_raw is not None else s.proxy_ssl_verify_depth

        trust = self._global_trust
        ca_ids = row.get("ca_certificates")
        if ca_ids is not None:
            store = self._ca_store(ca_ids)
            if isinstance(store, str):
                notices.append(("crit", f"unable to get upstream TLS CA store, err: {store}"))
            else:
                trust = store

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
        )

    def finish(self) -> None:
        """The build is complete: forget cached contexts nothing uses any more."""
        self._contexts.retain(self._used)


def _with_source(cert: ClientCertificate, source: str) -> ClientCertificate:
    if cert.source == source:
        return cert
    return ClientCertificate(cert.chain, cert.key, source, cert.entity_id)
