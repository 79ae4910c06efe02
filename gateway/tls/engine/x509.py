"""X.509 helpers with OpenSSL's semantics: PEM loading, key/cert match, chain verification, host check, digests.

Rules of this module:

- Everything here runs on the configuration flow or once per handshake, never per request. Parsed objects are
  ``cryptography`` certificates; pyOpenSSL objects are created only where OpenSSL itself must see them
  (``X509Store``, ``X509StoreContext``, ``Context`` trust stores).
- Verification results are OpenSSL *codes* and *depths*, recorded by a verify callback (``VerifyRecorder``) or
  read from ``X509StoreContextError.errors``. We never match OpenSSL error strings and never reach into
  pyOpenSSL's private ``_lib``/``_ffi``; the texts in ``VERIFY_ERROR_TEXT`` are a hard-coded copy of OpenSSL 3's
  ``X509_verify_cert_error_string`` (what nginx prints in its error log, and what Kong's tests assert).

Which code is reported. With a callback that records and accepts, OpenSSL reports several errors for one chain,
in this order (checked with pyOpenSSL on this machine):

========================================  ==========================  ========
chain                                     errors seen (code, depth)   reported
========================================  ==========================  ========
root->int1->int2->leaf, depth limit 1     (22, 2) (20, 2)             22
lone leaf from an unknown issuer          (20, 0) (21, 0)             21
leaf + intermediate, root not trusted     (20, 1)                     20
self-signed leaf                          (18, 0)                     18
trusted chain, expired leaf               (10, 0)                     10
========================================  ==========================  ========

nginx reports the *last* error it saw (``SSL_get_verify_result``), which gives 20 for the depth case, while
Kong's documentation shows 22 there. ``reported_verify_error`` reports 22 whenever the depth was exceeded and
the last error otherwise: it agrees with every case Kong documents and names the most useful reason.
"""

from __future__ import annotations

import datetime
import enum
import hashlib
import ipaddress
import ssl
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import NameOID
from OpenSSL import SSL, crypto

__all__ = [
    "RECORD_AND_ACCEPT",
    "RECORD_AND_ENFORCE",
    "VERIFY_ERROR_TEXT",
    "ChainVerdict",
    "PemError",
    "TrustStore",
    "VerifyCode",
    "VerifyErrorSink",
    "VerifyRecorder",
    "build_x509_store",
    "chain_digest",
    "check_host",
    "fingerprint",
    "is_ip_literal",
    "key_matches_cert",
    "load_pem_chain",
    "load_pem_private_key",
    "reported_verify_error",
    "sha1_fingerprint",
    "sha256_fingerprint",
    "to_openssl",
    "verify_chain",
    "verify_error_text",
]


class VerifyCode(enum.IntEnum):
    """The OpenSSL ``X509_V_ERR_*`` codes the gateway names (values are OpenSSL's, stable across versions)."""

    OK = 0
    UNSPECIFIED = 1
    UNABLE_TO_GET_ISSUER_CERT = 2
    CERT_SIGNATURE_FAILURE = 7
    CERT_NOT_YET_VALID = 9
    CERT_HAS_EXPIRED = 10
    DEPTH_ZERO_SELF_SIGNED_CERT = 18
    SELF_SIGNED_CERT_IN_CHAIN = 19
    UNABLE_TO_GET_ISSUER_CERT_LOCALLY = 20
    UNABLE_TO_VERIFY_LEAF_SIGNATURE = 21
    CERT_CHAIN_TOO_LONG = 22
    CERT_REVOKED = 23
    NO_ISSUER_PUBLIC_KEY = 24
    PATH_LENGTH_EXCEEDED = 25
    INVALID_PURPOSE = 26
    CERT_UNTRUSTED = 27
    CERT_REJECTED = 28
    HOSTNAME_MISMATCH = 62


# OpenSSL 3.0 X509_verify_cert_error_string(), dumped once on this machine and hard-coded so that log lines and
# error headers carry nginx's exact wording whatever OpenSSL pyOpenSSL happens to bundle.
VERIFY_ERROR_TEXT: dict[int, str] = {
    0: "ok",
    1: "unspecified certificate verification error",
    2: "unable to get issuer certificate",
    3: "unable to get certificate CRL",
    4: "unable to decrypt certificate's signature",
    5: "unable to decrypt CRL's signature",
    6: "unable to decode issuer public key",
    7: "certificate signature failure",
    8: "CRL signature failure",
    9: "certificate is not yet valid",
    10: "certificate has expired",
    11: "CRL is not yet valid",
    12: "CRL has expired",
    13: "format error in certificate's notBefore field",
    14: "format error in certificate's notAfter field",
    15: "format error in CRL's lastUpdate field",
    16: "format error in CRL's nextUpdate field",
    17: "out of memory",
    18: "self-signed certificate",
    19: "self-signed certificate in certificate chain",
    20: "unable to get local issuer certificate",
    21: "unable to verify the first certificate",
    22: "certificate chain too long",
    23: "certificate revoked",
    24: "issuer certificate doesn't have a public key",
    25: "path length constraint exceeded",
    26: "unsuitable certificate purpose",
    27: "certificate not trusted",
    28: "certificate rejected",
    29: "subject issuer mismatch",
    30: "authority and subject key identifier mismatch",
    31: "authority and issuer serial number mismatch",
    32: "key usage does not include certificate signing",
    33: "unable to get CRL issuer certificate",
    34: "unhandled critical extension",
    35: "key usage does not include CRL signing",
    36: "unhandled critical CRL extension",
    37: "invalid non-CA certificate (has CA markings)",
    38: "proxy path length constraint exceeded",
    39: "key usage does not include digital signature",
    40: "proxy certificates not allowed, please set the appropriate flag",
    41: "invalid or inconsistent certificate extension",
    42: "invalid or inconsistent certificate policy extension",
    43: "no explicit policy",
    44: "different CRL scope",
    45: "unsupported extension feature",
    46: "RFC 3779 resource not subset of parent's resources",
    47: "permitted subtree violation",
    48: "excluded subtree violation",
    49: "name constraints minimum and maximum not supported",
    50: "application verification failure",
    51: "unsupported name constraint type",
    52: "unsupported or invalid name constraint syntax",
    53: "unsupported or invalid name syntax",
    54: "CRL path validation error",
    55: "path loop",
    56: "Suite B: certificate version invalid",
    57: "Suite B: invalid public key algorithm",
    58: "Suite B: invalid ECC curve",
    59: "Suite B: invalid signature algorithm",
    60: "Suite B: curve not allowed for this LOS",
    61: "Suite B: cannot sign P-384 with P-256",
    62: "hostname mismatch",
    63: "email address mismatch",
    64: "IP address mismatch",
    65: "no matching DANE TLSA records",
    66: "EE certificate key too weak",
    67: "CA certificate key too weak",
    68: "CA signature digest algorithm too weak",
    69: "invalid certificate verification context",
    70: "issuer certificate lookup error",
    71: "Certificate Transparency required, but no valid SCTs found",
    72: "proxy subject name violation",
    73: "OCSP verification needed",
    74: "OCSP verification failed",
    75: "OCSP unknown cert",
    76: "Cannot find certificate signature algorithm",
    77: "subject signature algorithm and issuer public key algorithm mismatch",
    78: "cert info signature and signature algorithm mismatch",
    79: "invalid CA certificate",
    80: "Path length invalid for non-CA cert",
    81: "Path length given without key usage keyCertSign",
    82: "Key usage keyCertSign invalid for non-CA cert",
    83: "Issuer name empty",
    84: "Subject name empty",
    85: "Missing Authority Key Identifier",
    86: "Missing Subject Key Identifier",
    87: "Empty Subject Alternative Name extension",
    88: "Subject empty and Subject Alt Name extension not critical",
    89: "Basic Constraints of CA cert not marked critical",
    90: "Authority Key Identifier marked critical",
    91: "Subject Key Identifier marked critical",
    92: "CA cert does not include key usage extension",
    93: "Using cert extension requires at least X509v3",
    94: "Certificate public key has explicit ECC parameters",
}


def verify_error_text(code: int) -> str:
    """OpenSSL's wording for a verify code, as nginx logs it: ``(21:unable to verify the first certificate)``."""
    return VERIFY_ERROR_TEXT.get(code, "unknown certificate verification error")


# --------------------------------------------------------------------------------------------------------------
# Verify callback and the reported code
# --------------------------------------------------------------------------------------------------------------


class VerifyErrorSink(Protocol):
    """What a verify callback records into: the ``TlsSession`` set as the connection's app data."""

    verify_errors: list[tuple[int, int]]
    verify_rejected: bool


class VerifyRecorder:
    """A verify callback for ``Context.set_verify`` / ``Connection.set_verify`` that records every error.

    The callback is installed once per *context* (contexts are shared by all connections), so the errors go to
    the object stored with ``Connection.set_app_data`` (the ``TlsSession``), which must have a
    ``verify_errors`` list. ``accept=True`` is nginx's behaviour for upstreams and Kong's for client
    certificates: the handshake always completes and the caller decides afterwards from the recorded errors.
    ``accept=False`` keeps OpenSSL's verdict, so the handshake fails at the first error.
    """

    __slots__ = ("accept",)

    def __init__(self, accept: bool) -> None:
        self.accept = accept

    def __call__(self, conn: SSL.Connection, cert: crypto.X509, errno: int, depth: int, ok: int) -> bool:
        if errno:
            sink = conn.get_app_data()
            try:
                sink.verify_errors.append((errno, depth))
                if not self.accept and not ok:
                    sink.verify_rejected = True
            except AttributeError:
                pass
        return True if self.accept else bool(ok)

    def __repr__(self) -> str:
        return f"VerifyRecorder(accept={self.accept})"


RECORD_AND_ACCEPT = VerifyRecorder(accept=True)
RECORD_AND_ENFORCE = VerifyRecorder(accept=False)


def reported_verify_error(errors: Sequence[tuple[int, int]], depth_exceeded: bool | None = None) -> tuple[int, int]:
    """The (code, depth) to report for the errors OpenSSL raised on one chain; ``(0, 0)`` when there were none.

    Args:
        errors: ``(code, depth)`` pairs in the order OpenSSL reported them.
        depth_exceeded: whether the depth limit was hit; derived from the errors (code 22) when ``None``.

    Returns:
        ``(22, depth)`` when the depth was exceeded, otherwise the last error (see the module docstring).
    """
    if not errors:
        return (0, 0)
    if depth_exceeded is None or depth_exceeded:
        for code, depth in errors:
            if code == VerifyCode.CERT_CHAIN_TOO_LONG:
                return (code, depth)
    return errors[-1]


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
# Host name check (X509_check_host with flags 0, as nginx calls it)
# --------------------------------------------------------------------------------------------------------------

_ALNUM = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_LABEL_START, _LABEL_IDNA, _LABEL_HYPHEN = 1, 2, 4


def _equal_nocase(pattern: bytes, subject: bytes) -> bool:
    # ASCII-only case folding, like OpenSSL; a NUL in the pattern never matches.
    return len(pattern) == len(subject) and b"\0" not in pattern and pattern.lower() == subject.lower()


def _valid_star(p: bytes) -> int:
    """Index of the one legal ``*`` in a pattern, or -1 (OpenSSL ``valid_star`` without partial-wildcard bans)."""
    star = -1
    state = _LABEL_START
    dots = 0
    n = len(p)
    for i, c in enumerate(p):
        if c == 0x2A:  # '*'
            atstart = state & _LABEL_START
            atend = i == n - 1 or p[i + 1] == 0x2E
            if star >= 0 or state & _LABEL_IDNA or dots:
                return -1
            if not atstart and not atend:
                return -1
            star = i
            state &= ~_LABEL_START
        elif c in _ALNUM:
            if state & _LABEL_START and n - i >= 4 and p[i : i + 4].lower() == b"xn--":
                state |= _LABEL_IDNA
            state &= ~(_LABEL_HYPHEN | _LABEL_START)
        elif c == 0x2E:  # '.'
            if state & (_LABEL_HYPHEN | _LABEL_START):
                return -1
            state = _LABEL_START
            dots += 1
        elif c == 0x2D:  # '-'
            if state & _LABEL_START:
                return -1
            state |= _LABEL_HYPHEN
        else:
            return -1
    if state & (_LABEL_START | _LABEL_HYPHEN) or dots < 2:
        return -1
    return star


def _wildcard_match(prefix: bytes, suffix: bytes, subject: bytes) -> bool:
    if len(subject) < len(prefix) + len(suffix):
        return False
    if not _equal_nocase(prefix, subject[: len(prefix)]):
        return False
    end = len(subject) - len(suffix)
    if not _equal_nocase(subject[end:], suffix):
        return False
    matched = subject[len(prefix) : end]
    allow_idna = False
    if not prefix and suffix[:1] == b".":
        # A whole-label wildcard must match at least one character.
        if not matched:
            return False
        allow_idna = True
    if not allow_idna and subject[:4].lower() == b"xn--":
        return False
    if matched == b"*":
        return True
    return all(c in _ALNUM or c == 0x2D for c in matched)


def _equal_wildcard(pattern: bytes, subject: bytes) -> bool:
    star = -1 if (len(subject) > 1 and subject[:1] == b".") else _valid_star(pattern)
    if star < 0:
        return _equal_nocase(pattern, subject)
    return _wildcard_match(pattern[:star], pattern[star + 1 :], subject)


def check_host(cert: x509.Certificate, name: str) -> bool:
    """Whether ``cert`` is valid for ``name``, with ``X509_check_host(cert, name, len, 0, NULL)`` semantics.

    - DNS SANs are compared case-insensitively (ASCII only); a ``*`` is allowed in the leftmost label only,
      either as the whole label (matching exactly one non-empty label) or at its start or end (``f*.x.test``);
      the pattern needs at least two dots after the star and no ``xn--`` label holds a star.
    - The subject CN is consulted only when the certificate has no DNS SAN (iPAddress or e-mail SANs do not
      count), every CN is tried, with the same rules.
    - An IP literal is *not* special: nginx's ``ngx_ssl_check_host`` passes the upstream name to
      ``X509_check_host`` whatever it is, so ``127.0.0.1`` is compared as text with DNS SANs and the CN, and
      iPAddress SANs are never consulted. Checked against ``openssl x509 -checkhost`` (the same library call)
      in the tests.

    Args:
        cert: the leaf certificate.
        name: the host name without port, exactly as it will be sent as SNI / Host.
    """
    if not name:
        return False
    subject = name.encode("utf-8")
    if b"\0" in subject:
        return False
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        dns_names: list[str] = []
    else:
        dns_names = san.get_values_for_type(x509.DNSName)
    if dns_names:
        return any(_equal_wildcard(d.encode("utf-8", "replace"), subject) for d in dns_names)
    for attr in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
        value = attr.value if isinstance(attr.value, str) else attr.value.decode("utf-8", "replace")
        if _equal_wildcard(value.encode("utf-8"), subject):
            return True
    return False


def is_ip_literal(name: str) -> bool:
    """Whether a host is an IP literal: nginx sends no SNI for those (the host check still runs, see above)."""
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


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
