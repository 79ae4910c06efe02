"""PEM parsing for entity validation: certificates, private keys, key/cert matching, CA digests.

Only what the entity rules need (``certificates.lua``, ``ca_certificates.lua``): parse the *first*
certificate of a PEM string (a chain is allowed and served as a chain), parse a private key, compare the
certificate's public key with the key's, tell key types apart (RSA vs ECDSA...), read notAfter and the CA
basic constraint, and compute the SHA-256 digest of the DER certificate. The TLS layer does its own
loading for serving; nothing here is on the hot path.

Error texts: Kong prints OpenSSL's error queue (``invalid certificate: x509.new: error:...:nested asn1
error:...``). We print ``x509.new: `` / ``pkey.new: `` followed by OpenSSL's library and reason strings
as pyOpenSSL reports them (without the packed error code and source location, which OpenSSL builds differ
on anyway).
"""

from __future__ import annotations

import datetime
import hashlib
from functools import lru_cache
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from OpenSSL import crypto

from gateway.tls.engine.errors import ReasonStyle, openssl_reason

__all__ = [
    "CERT_TAG",
    "PemError",
    "cert_digest",
    "cert_is_ca",
    "cert_not_after",
    "key_type",
    "load_certificate",
    "load_private_key",
    "public_key_matches",
]

CERT_TAG = "-----BEGIN CERTIFICATE-----"


class PemError(ValueError):
    """A PEM string that OpenSSL cannot read; ``str()`` is the message after ``invalid ...: ``."""


@lru_cache(maxsize=512)
def load_certificate(pem: str) -> x509.Certificate:
    """The first certificate of ``pem``; raises ``PemError("x509.new: <reason>")``."""
    data = pem.encode("utf-8", "surrogateescape")
    try:
        return x509.load_pem_x509_certificate(data)
    except Exception:
        pass
    try:
        crypto.load_certificate(crypto.FILETYPE_PEM, data)
    except Exception as exc:
        raise PemError(f"x509.new: {openssl_reason(exc, ReasonStyle.QUEUE)}") from None
    raise PemError("x509.new: unsupported certificate")


@lru_cache(maxsize=512)
def load_private_key(pem: str) -> Any:
    """The private key of ``pem`` (unencrypted); raises ``PemError("pkey.new: <reason>")``."""
    data = pem.encode("utf-8", "surrogateescape")
    try:
        return serialization.load_pem_private_key(data, password=None)
    except Exception:
        pass
    try:
        crypto.load_privatekey(crypto.FILETYPE_PEM, data)
    except Exception as exc:
        raise PemError(f"pkey.new: {openssl_reason(exc, ReasonStyle.QUEUE)}") from None
    raise PemError("pkey.new: unsupported key")


def _spki(public_key: Any) -> bytes:
    return bytes(public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))


def public_key_matches(cert_pem: str, key_pem: str) -> bool:
    """Kong's check: the certificate's public key equals the key's public half."""
    return _spki(load_certificate(cert_pem).public_key()) == _spki(load_private_key(key_pem).public_key())


def key_type(cert_pem: str) -> str:
    """``RSA``, ``EC``, ``Ed25519``, ``Ed448``, ``DSA`` (what OpenSSL's key type id distinguishes)."""
    key = load_certificate(cert_pem).public_key()
    for cls, name in (
        (rsa.RSAPublicKey, "RSA"),
        (ec.EllipticCurvePublicKey, "EC"),
        (ed25519.Ed25519PublicKey, "Ed25519"),
        (ed448.Ed448PublicKey, "Ed448"),
        (dsa.DSAPublicKey, "DSA"),
    ):
        if isinstance(key, cls):
            return name
    return type(key).__name__


def cert_digest(cert_pem: str) -> str:
    """Lower-case hex SHA-256 of the DER encoding of the first certificate (``ca_certificates.cert_digest``)."""
    der = load_certificate(cert_pem).public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).hexdigest()


def cert_not_after(cert_pem: str) -> datetime.datetime:
    return load_certificate(cert_pem).not_valid_after_utc


def cert_is_ca(cert_pem: str) -> bool:
    """True when the certificate has ``basicConstraints`` with ``CA:TRUE``."""
    try:
        ext = load_certificate(cert_pem).extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        return False
    return bool(ext.value.ca)
