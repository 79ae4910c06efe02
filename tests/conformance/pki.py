"""Certificates for the Admin API conformance tests, generated per test session with cryptography."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Pair:
    cert: str
    key: str


def _key(kind: str) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    return rsa.generate_private_key(65537, 2048) if kind == "rsa" else ec.generate_private_key(ec.SECP256R1())


def make_pair(cn: str, kind: str = "rsa", ca: bool = False, expired: bool = False, issuer: Pair | None = None) -> Pair:
    """A certificate and its key; self-signed unless ``issuer`` is given."""
    key = _key(kind)
    now = dt.datetime.now(dt.UTC)
    start, end = (
        (now - dt.timedelta(days=30), now - dt.timedelta(days=1)) if expired else (now, now + dt.timedelta(days=30))
    )
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    signer_key = key
    issuer_name = name
    if issuer is not None:
        signer_key = serialization.load_pem_private_key(issuer.key.encode(), None)  # type: ignore[assignment]
        issuer_name = x509.load_pem_x509_certificate(issuer.cert.encode()).subject
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(signer_key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return Pair(cert_pem, key_pem)
