"""X.509 helpers with OpenSSL's semantics: PEM loading, key/cert match, trust stores, chain verification, digests.

Rules of this module:

- Everything here runs on the configuration flow or once per handshake, never per request. Parsed objects are
  ``cryptography`` certificates; pyOpenSSL objects are created only where OpenSSL itself must see them
  (``X509Store``, ``X509StoreContext``, ``Context`` trust stores).
- Verification results are OpenSSL *codes* and *depths*, recorded by a verify callback (``VerifyRecorder``) or
  read from ``X509StoreContextError.errors``. We never match OpenSSL error strings and never reach into
  pyOpenSSL's private ``_lib``/``_ffi``; the texts in ``VERIFY_ERROR_TEXT`` are a hard-coded copy of OpenSSL 3's
  ``X509_verify_cert_error_string`` (what nginx prints in its error log, and what Kong's tests assert).

Verification codes, the verify callback and the code a handshake reports are in ``verify_codes.py``; the host
name check in ``hostnames.py``.
"""

from __future__ import annotations

import datetime
import hashlib
import ssl
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from OpenSSL import SSL, crypto

from gateway.tls.engine.verify_codes import VerifyCode, reported_verify_error

__all__ = [
    "ChainVerdict",
    "PemError",
    "TrustStore",
    "build_x509_store",
    "chain_digest",
    "fingerprint",
    "key_matches_cert",
    "load_pem_chain",
    "load_pem_private_key",
    "sha1_fingerprint",
    "sha256_fingerprint",
    "to_openssl",
    "verify_chain",
]


# --------------------------------------------------------------------------------------------------------------
# PEM, keys, digests
# --------------------------------------------------------------------------------------------------------------


class PemError(ValueError):
    """A PEM text that does not hold what was expected (the message says what, for Kong-shaped errors)."""


def _as_bytes(pem: str | bytes) -> bytes:
    return pem.encode("ascii", "replace") if isinstance(pem, str) else pem


def load_pem_chain(pem: str | bytes) -> list[x509.Certificate]:
    """Every certificate in a PEM text, in order: the leaf first, then the intermediates as given.

    Raises:
        PemError: no certificate, or a certificate block that does not parse.
    """
    data = _as_bytes(pem)
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise PemError("no certificate found in PEM text")
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise PemError(f"invalid PEM certificate: {exc}") from None


def load_pem_private_key(pem: str | bytes, password: bytes | None = None) -> PrivateKeyTypes:
    """The private key in a PEM text (PKCS#8, PKCS#1 or SEC1).

    Raises:
        PemError: no key, an encrypted key without the password, or garbage.
    """
    try:
        return serialization.load_pem_private_key(_as_bytes(pem), password=password)
    except (ValueError, TypeError) as exc:
        raise PemError(f"invalid PEM private key: {exc}") from None


def _spki(public_key: Any) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_matches_cert(key: PrivateKeyTypes, cert: x509.Certificate) -> bool:
    """Whether ``key`` is the private half of ``cert``'s public key (what ``SSL_CTX_check_private_key`` checks)."""
    return _spki(key.public_key()) == _spki(cert.public_key())


def fingerprint(cert: x509.Certificate, algorithm: str = "sha256") -> str:
    """Lower-case hex digest of the certificate's DER (``sha256`` or ``sha1``), as Kong's mtls-auth uses them."""
    return hashlib.new(algorithm, cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def sha256_fingerprint(cert: x509.Certificate) -> str:
    """``fingerprint(cert, "sha256")``."""
    return fingerprint(cert, "sha256")


def sha1_fingerprint(cert: x509.Certificate) -> str:
    """``fingerprint(cert, "sha1")``."""
    return fingerprint(cert, "sha1")


def chain_digest(certs: Iterable[x509.Certificate]) -> str:
    """A content identity for a list of certificates (order matters): the upstream pool and session keys use it,
    so that editing a CA's or a client certificate's PEM can never reuse a connection made under the old one."""
    h = hashlib.sha256()
    for cert in certs:
        der = cert.public_bytes(serialization.Encoding.DER)
        h.update(len(der).to_bytes(4, "big"))
        h.update(der)
    return h.hexdigest()


def to_openssl(cert: x509.Certificate) -> crypto.X509:
    """The pyOpenSSL view of a certificate, for the few APIs that need one (stores, contexts)."""
    return crypto.X509.from_cryptography(cert)


# --------------------------------------------------------------------------------------------------------------
# Trust stores and chain verification
# --------------------------------------------------------------------------------------------------------------


def build_x509_store(
    cas: Iterable[x509.Certificate] = (), *, system: bool = False, partial_chain: bool = False
) -> crypto.X509Store:
    """A fresh OpenSSL store trusting ``cas`` (and the system bundle when ``system``).

    ``partial_chain`` sets ``X509_V_FLAG_PARTIAL_CHAIN`` (a trusted intermediate is enough); the flag belongs to
    the store, which is why it is chosen here and not per verification.
    """
    store = crypto.X509Store()
    for ca in cas:
        store.add_cert(to_openssl(ca))
    if system:
        paths = ssl.get_default_verify_paths()
        if paths.cafile or paths.capath:
            store.load_locations(paths.cafile, paths.capath)
    if partial_chain:
        store.set_flags(crypto.X509StoreFlags.PARTIAL_CHAIN)
    return store


class TrustStore:
    """An immutable set of trusted CAs, built once per snapshot: the content digest for pool keys, and lazily
    built OpenSSL stores (plain and partial-chain) for ``verify_chain``.

    ``TrustStore.system()`` stands for the system bundle (Kong's ``system`` value); its digest is ``"system"``.
    """

    __slots__ = ("_stores", "certificates", "digest", "system")

    def __init__(self, certificates: Sequence[x509.Certificate] = (), *, system: bool = False) -> None:
        self.certificates: tuple[x509.Certificate, ...] = tuple(certificates)
        self.system = system
        self.digest = ("system+" if system else "") + chain_digest(self.certificates)
        self._stores: dict[bool, crypto.X509Store] = {}

    @classmethod
    def from_pem(cls, pems: Iterable[str | bytes]) -> TrustStore:
        """Every certificate of every PEM text (``ca_certificates`` entities, a bundle file)."""
        certs: list[x509.Certificate] = []
        for pem in pems:
            certs.extend(load_pem_chain(pem))
        return cls(certs)

    @classmethod
    def system_store(cls) -> TrustStore:
        """The system CA bundle, as OpenSSL finds it."""
        return cls((), system=True)

    def x509_store(self, partial_chain: bool = False) -> crypto.X509Store:
        """The OpenSSL store for chain checks (built on first use, then shared)."""
        store = self._stores.get(partial_chain)
        if store is None:
            store = build_x509_store(self.certificates, system=self.system, partial_chain=partial_chain)
            self._stores[partial_chain] = store
        return store

    def install(self, ctx: SSL.Context) -> None:
        """Add these CAs to a context's own store (upstream verification builds one context per trust set, so
        this *is* Kong's "replace the store")."""
        store = ctx.get_cert_store()
        assert store is not None
        for ca in self.certificates:
            store.add_cert(to_openssl(ca))
        if self.system:
            ctx.set_default_verify_paths()


class ChainVerdict(NamedTuple):
    """The result of ``verify_chain``: ``ok``, and the reported OpenSSL ``code`` and ``depth`` (0, 0 when ok)."""

    ok: bool
    code: int
    depth: int


_BUILD_ERRORS = frozenset({2, 18, 19, 20})


def _time_errors(chain: Sequence[x509.Certificate], top: int, now: datetime.datetime) -> list[tuple[int, int]]:
    """OpenSSL's validity checks from depth ``top`` down to the leaf, as ``internal_verify`` walks them."""
    errors = []
    for depth in range(min(top, len(chain) - 1), -1, -1):
        cert = chain[depth]
        if now < cert.not_valid_before_utc:
            errors.append((int(VerifyCode.CERT_NOT_YET_VALID), depth))
        elif now > cert.not_valid_after_utc:
            errors.append((int(VerifyCode.CERT_HAS_EXPIRED), depth))
    return errors


def _issuer_order(chain: Sequence[x509.Certificate]) -> list[x509.Certificate]:
    """The leaf followed by its issuers taken from the rest of ``chain`` by name, the way OpenSSL builds."""
    ordered = [chain[0]]
    rest = list(chain[1:])
    while rest:
        top = ordered[-1]
        if top.issuer == top.subject:
            break
        for i, cand in enumerate(rest):
            if cand.subject == top.issuer:
                ordered.append(rest.pop(i))
                break
        else:
            break
    return ordered


def verify_chain(
    chain: Sequence[x509.Certificate],
    store: TrustStore | crypto.X509Store,
    depth: int | None = None,
    partial_chain: bool = False,
    *,
    now: datetime.datetime | None = None,
) -> ChainVerdict:
    """Verify a presented chain (leaf first, then untrusted intermediates) the way a TLS handshake would.

    The result follows the handshake's rule (``reported_verify_error``): OpenSSL's ``X509StoreContext`` stops at
    the first error, so the errors a recording callback would still have seen are derived here: 21 after a lone
    leaf's 20, the validity checks walking down the built chain, and the depth limit (which pyOpenSSL's store
    cannot carry) as OpenSSL applies it: at most ``depth`` intermediates between the leaf and the trust anchor,
    reported as ``(22, depth + 1)`` then ``(20, depth + 1)``. Errors after other failures (signature, purpose,
    ...) are not derived: the first one is reported. The unit tests cross-check this against real handshakes.

    Args:
        chain: the certificates the peer sent, leaf first (``TlsSession.peer_chain``).
        store: the trust anchors; a raw ``X509Store`` must already carry the partial-chain flag if wanted.
        depth: OpenSSL verify depth; ``None`` = unlimited (mtls-auth's default, like Kong).
        partial_chain: accept a trusted intermediate as the anchor (only with a ``TrustStore``).
        now: only for tests; the validity checks of the derived errors use it (OpenSSL uses the clock).

    Raises:
        ValueError: empty chain, or ``partial_chain`` with a raw store.
    """
    if not chain:
        raise ValueError("empty certificate chain")
    if isinstance(store, TrustStore):
        x_store = store.x509_store(partial_chain)
    elif partial_chain:
        raise ValueError("partial_chain needs a TrustStore (the flag is a property of the store)")
    else:
        x_store = store
    if now is None:
        now = datetime.datetime.now(datetime.UTC)
    leaf = to_openssl(chain[0])
    untrusted = [to_openssl(c) for c in chain[1:]]
    errors: list[tuple[int, int]]
    try:
        verified = crypto.X509StoreContext(x_store, leaf, untrusted).get_verified_chain()
    except crypto.X509StoreContextError as exc:
        code, err_depth = int(exc.errors[0]), int(exc.errors[1])
        built = _issuer_order(chain)
        if depth is not None and code in _BUILD_ERRORS and err_depth > depth:
            top = depth + 1
            errors = [(22, top), (20, top), *_time_errors(built, top, now)]
        elif code in _BUILD_ERRORS:
            errors = [(code, err_depth)]
            if err_depth == 0 and code in (2, 20):
                errors.append((int(VerifyCode.UNABLE_TO_VERIFY_LEAF_SIGNATURE), 0))
            errors.extend(_time_errors(built, err_depth, now))
        elif code in (9, 10):
            errors = [(code, err_depth), *_time_errors(built, err_depth - 1, now)]
        else:
            errors = [(code, err_depth)]
    else:
        if depth is None or len(verified) - 2 <= depth:
            return ChainVerdict(True, 0, 0)
        top = depth + 1
        full = [c.to_cryptography() for c in verified]
        errors = [(22, top), (20, top), *_time_errors(full, top, now)]
    code, err_depth = reported_verify_error(errors)
    return ChainVerdict(False, code, err_depth)
