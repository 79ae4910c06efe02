"""A bundle's structure and the words for its certificates.

``Shape`` finds the leaf (the certificate the key belongs to, else the first) and which certificate issued which,
by name and signature as OpenSSL builds chains; the small functions say a certificate, a date, a key in words.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import NameOID

from gateway.tls.engine.x509 import key_matches_cert

__all__ = [
    "Shape",
    "basic_constraints",
    "ca_words",
    "cert_sign_missing",
    "chain_path",
    "cn_of",
    "date_of",
    "days_of",
    "der_of",
    "is_ca",
    "issued_by",
    "key_words",
    "ref",
    "self_signed",
]


def cn_of(name: x509.Name) -> str:
    """``CN=...`` when the name has a CN, else the whole name (RFC 4514)."""
    cns = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    if cns:
        value = cns[0].value
        return f"CN={value if isinstance(value, str) else value.decode('utf-8', 'replace')}"
    return name.rfc4514_string() or "(empty name)"


def date_of(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def days_of(span: datetime.timedelta) -> str:
    """``1 day``, ``12 days``, ``5 hours`` (under a day)."""
    if span.days >= 1:
        return f"{span.days} day" if span.days == 1 else f"{span.days} days"
    hours = max(1, span.seconds // 3600)
    return f"{hours} hour" if hours == 1 else f"{hours} hours"


def key_words(cert: x509.Certificate) -> str:
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA {key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC {key.curve.name}"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448"
    if isinstance(key, dsa.DSAPublicKey):
        return f"DSA {key.key_size}"
    return type(key).__name__


def basic_constraints(cert: x509.Certificate) -> x509.BasicConstraints | None:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return None


def ca_words(cert: x509.Certificate) -> str:
    bc = basic_constraints(cert)
    if bc is None:
        return "no basicConstraints"
    if not bc.ca:
        return "CA:FALSE"
    return "CA:TRUE" if bc.path_length is None else f"CA:TRUE, pathlen:{bc.path_length}"


def cert_sign_missing(cert: x509.Certificate) -> bool:
    """Whether the certificate has a keyUsage that does not allow signing certificates."""
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return not usage.key_cert_sign


def is_ca(cert: x509.Certificate) -> bool:
    bc = basic_constraints(cert)
    return bc is not None and bc.ca


def issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    """Whether ``parent`` issued ``child``: the names chain and ``parent``'s key verifies ``child``'s signature."""
    if child.issuer != parent.subject:
        return False
    try:
        child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def self_signed(cert: x509.Certificate) -> bool:
    return issued_by(cert, cert)


def der_of(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def ref(certs: Sequence[x509.Certificate], i: int) -> str:
    """``certificate 2 (CN=Test Intermediate)``."""
    return f"certificate {i + 1} ({cn_of(certs[i].subject)})"


@dataclass(frozen=True, slots=True)
class Shape:
    """Who is who in a bundle (indices into it).

    Attributes:
        leaf: the server's certificate: the one the key belongs to (unless that one issued another certificate of
            the bundle), else the first certificate that issued none of the others.
        path: the leaf, its issuer, that one's issuer... as far as the bundle goes.
        duplicates: (index, index of the first copy) of certificates given twice.
        extras: certificates that are not on the leaf's path.
        key_index: the certificate the key belongs to, or None (no key, or it matches none).
    """

    leaf: int
    path: tuple[int, ...]
    duplicates: tuple[tuple[int, int], ...]
    extras: tuple[int, ...]
    key_index: int | None

    @classmethod
    def of(cls, certs: Sequence[x509.Certificate], key: PrivateKeyTypes | None) -> Shape:
        first_copy: dict[bytes, int] = {}
        duplicates: list[tuple[int, int]] = []
        unique: list[int] = []
        for i, cert in enumerate(certs):
            der = der_of(cert)
            if der in first_copy:
                duplicates.append((i, first_copy[der]))
            else:
                first_copy[der] = i
                unique.append(i)
        issuers = {j for j in unique for i in unique if i != j and issued_by(certs[i], certs[j])}
        key_index = next((i for i in unique if key_matches_cert(key, certs[i])), None) if key is not None else None
        if key_index is not None and key_index not in issuers:
            leaf = key_index
        else:
            candidates = [i for i in unique if i not in issuers]
            if not candidates or candidates[0] == 0:
                leaf = 0
            else:
                leaf = next((i for i in candidates if not is_ca(certs[i])), candidates[0])
        path = [leaf]
        while not self_signed(certs[path[-1]]):
            top = certs[path[-1]]
            above = next((j for j in unique if j not in path and issued_by(top, certs[j])), None)
            if above is None:
                break
            path.append(above)
        extras = tuple(i for i in unique if i not in path)
        return cls(leaf, tuple(path), tuple(duplicates), extras, key_index)

    def ordered(self, certs: Sequence[x509.Certificate]) -> list[x509.Certificate]:
        """The bundle as it should be sent: unchanged when the leaf is first, else the leaf's path first."""
        if self.leaf == 0:
            return list(certs)
        rest = [certs[i] for i in range(len(certs)) if i not in self.path]
        return [certs[i] for i in self.path] + rest


def chain_path(leaf: x509.Certificate, pool: Sequence[x509.Certificate]) -> list[x509.Certificate]:
    """The leaf and its issuers found in ``pool`` (bundle + CA file), up to a self-signed one or a gap."""
    path = [leaf]
    while not self_signed(path[-1]):
        above = next((c for c in pool if all(c is not p for p in path) and issued_by(path[-1], c)), None)
        if above is None:
            break
        path.append(above)
    return path
