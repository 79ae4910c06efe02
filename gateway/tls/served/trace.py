"""Layer 1's decision record: which certificate a handshake was served, and by which of Kong's rules.

Nothing is computed twice: the SNI callback already keeps the ``CertificateEntry`` it chose (``TlsInfo.
server_certificate``); the rule is read off that entry (its SNI entity name against the client's SNI, or the
index's default and where its pair came from), and the negotiated values (version, cipher, ALPN, the certificate
of an RSA + ECDSA pair that OpenSSL picked) are read from the SSL object only when a record is asked for.
The Admin API's ``/tls/served`` calls the same ``CertificateIndex.select`` a handshake calls (``served_choice``).
"""

from __future__ import annotations

import datetime
import enum
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

from gateway.tls.served.certificates import CertificateEntry, CertificateIndex
from gateway.tls.served.sni_names import CATCH_ALL_SNI
from gateway.tls.trace import NONE, Pairs, TraceHeader, yesno

__all__ = ["ServedRecord", "ServedRule", "key_type", "served_record", "served_rule"]


class ServedRule(enum.Enum):
    """Which step of Kong's certificate selection chose the served certificate (``docs/tls-model.md`` layer 1)."""

    EXACT = "exact"
    WILDCARD_PREFIX = "wildcard-prefix"  # *.example.test
    WILDCARD_SUFFIX = "wildcard-suffix"  # www.example.*
    CATCH_ALL = "catch-all"  # the SNI entity named "*"
    SSL_CERT = "ssl_cert"  # the listener default from the ssl_cert setting
    GENERATED_DEFAULT = "generated-default"  # Kong's pair generated under <prefix>/ssl/


def served_rule(server_name: str | None, entry: CertificateEntry, index: CertificateIndex) -> ServedRule:
    """The rule behind ``entry`` = ``index.select(server_name)``, read off the entry (no second lookup)."""
    name = entry.sni
    if name is None:
        generated = bool(index.default_pairs) and all(getattr(p, "generated", False) for p in index.default_pairs)
        return ServedRule.GENERATED_DEFAULT if generated else ServedRule.SSL_CERT
    if name == server_name:
        return ServedRule.EXACT
    if name == CATCH_ALL_SNI:
        return ServedRule.CATCH_ALL
    if name.startswith("*"):
        return ServedRule.WILDCARD_PREFIX
    if name.endswith("*"):
        return ServedRule.WILDCARD_SUFFIX
    return ServedRule.EXACT


def key_type(cert: x509.Certificate) -> str:
    """``rsa``, ``ecdsa``, ``ed25519``... of a certificate's public key."""
    key = cert.public_key()
    for kind, label in (
        (rsa.RSAPublicKey, "rsa"),
        (ec.EllipticCurvePublicKey, "ecdsa"),
        (ed25519.Ed25519PublicKey, "ed25519"),
        (ed448.Ed448PublicKey, "ed448"),
        (dsa.DSAPublicKey, "dsa"),
    ):
        if isinstance(key, kind):
            return label
    return type(key).__name__.lower()


def not_after(cert: x509.Certificate) -> str:
    """``notAfter`` as ISO 8601 UTC."""
    return cert.not_valid_after_utc.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class ServedRecord:
    """Layer 1 for one connection: the SNI, the rule and certificate, and what the handshake negotiated."""

    sni: str | None
    rule: ServedRule
    sni_entity: str | None
    certificate_id: str | None
    key: str | None
    version: str | None
    cipher: str | None
    alpn: str | None
    resumed: bool

    @property
    def header(self) -> TraceHeader:
        return TraceHeader.DOWNSTREAM

    def pairs(self) -> Pairs:
        return (
            ("sni", self.sni if self.sni is not None else NONE),
            ("rule", self.rule.value),
            ("sni_entity", self.sni_entity or NONE),
            ("certificate", self.certificate_id or NONE),
            ("key", self.key or NONE),
            ("version", self.version or NONE),
            ("cipher", self.cipher or NONE),
            ("alpn", self.alpn or NONE),
            ("resumed", yesno(self.resumed)),
        )


def served_record(tls: Any, index: CertificateIndex | None) -> ServedRecord | None:
    """The record of an established downstream connection (``TlsInfo``), or None when it has no SNI decision."""
    entry = getattr(tls, "server_certificate", None)
    if not isinstance(entry, CertificateEntry) or index is None:
        return None
    local = tls.local_certificate
    return ServedRecord(
        sni=tls.sni,
        rule=served_rule(tls.sni, entry, index),
        sni_entity=entry.sni,
        certificate_id=entry.certificate_id,
        key=key_type(local) if local is not None else None,
        version=tls.version,
        cipher=tls.cipher,
        alpn=tls.alpn,
        resumed=bool(tls.session_reused),
    )
