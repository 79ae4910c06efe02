"""Reading what ``gateway doctor cert`` is given: a file, then its PEM certificates or key; each failure a finding."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from gateway.doctor.findings import Finding, Kind
from gateway.tls.engine.x509 import PemError, load_pem_chain, load_pem_private_key

__all__ = ["parse_certificates", "parse_key", "read_file"]


def read_file(path: str, what: str) -> bytes | Finding:
    """The bytes of ``path``, or a FILE_MISSING / FILE_UNREADABLE finding naming ``what`` it should hold."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return Finding.of(
            Kind.FILE_MISSING,
            f"{what} {path} does not exist.",
            "check the path (relative paths start in the current directory).",
            path=path,
        )
    except OSError as exc:
        return Finding.of(
            Kind.FILE_UNREADABLE,
            f"{what} {path} cannot be read: {exc.strerror}.",
            "make it a readable file.",
            path=path,
        )


def parse_certificates(data: bytes, label: str) -> list[x509.Certificate] | Finding:
    """Every certificate of a PEM text (the engine's ``load_pem_chain``), or a NOT_PEM finding."""
    try:
        return load_pem_chain(data)
    except PemError as exc:
        if b"PRIVATE KEY-----" in data and b"-----BEGIN CERTIFICATE-----" not in data:
            return Finding.of(
                Kind.NOT_PEM,
                f"{label} holds a private key, not a certificate.",
                "the certificate and the key look swapped.",
            )
        return Finding.of(
            Kind.NOT_PEM,
            f"{label} holds no usable certificate ({exc}).",
            "give a PEM file: '-----BEGIN CERTIFICATE-----' blocks, leaf first.",
        )


def parse_key(data: bytes, label: str) -> PrivateKeyTypes | Finding:
    """The private key of a PEM text (the engine's ``load_pem_private_key``), or a KEY_UNUSABLE finding."""
    try:
        return load_pem_private_key(data)
    except PemError as exc:
        if b"-----BEGIN CERTIFICATE-----" in data and b"PRIVATE KEY-----" not in data:
            return Finding.of(
                Kind.KEY_UNUSABLE,
                f"{label} holds a certificate, not a private key.",
                "the certificate and the key look swapped.",
            )
        return Finding.of(
            Kind.KEY_UNUSABLE,
            f"{label} holds no usable private key ({exc}).",
            "give the unencrypted PEM key made with this certificate's request (nginx and Kong cannot ask for a "
            "passphrase).",
        )
