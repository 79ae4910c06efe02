"""Certificates for the benchmarks: one root -> intermediate -> {server, client} chain per key type.

Both proxies get the very same files (server chain and key for the downstream listener, the root as the trust
anchor, the client chain for mutual TLS), so a difference in the figures cannot come from different
certificates. The server leaf names ``localhost`` (the name both proxies send as SNI and check, as Kong does for a
service whose host is ``localhost``) and ``127.0.0.1``.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["Pki", "make_pki"]


@dataclass(frozen=True)
class Pki:
    """Paths of the files written by ``make_pki`` and the PEM texts the gateway's declarative config embeds."""

    key_type: str
    root: Path  # trust anchor (upstream verification and client-certificate verification)
    server_chain: Path  # leaf + intermediate
    server_key: Path
    client_chain: Path
    client_key: Path
    client_combined: Path  # chain + key in one file, for ``ab -E``
    pems: dict[str, str]


def _key(key_type: str) -> Any:
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if key_type == "ecdsa":
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError(f"unknown key type {key_type!r}")


def _pem(obj: Any) -> str:
    if hasattr(obj, "private_bytes"):
        data = obj.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    else:
        data = obj.public_bytes(serialization.Encoding.PEM)
    return bytes(data).decode()


def _issue(
    cn: str, key: Any, issuer: tuple[x509.Certificate, Any] | None, *, ca: bool, server: bool = False
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer[0].subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        if server:
            sans: list[x509.GeneralName] = [
                x509.DNSName("localhost"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            ]
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256())


def make_pki(directory: Path, key_type: str = "ecdsa") -> Pki:
    """Generate the chain with ``key_type`` keys (``rsa``: RSA-2048, ``ecdsa``: P-256) and write it under
    ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    root_key = _key(key_type)
    root = _issue(f"Bench Root {key_type}", root_key, None, ca=True)
    inter_key = _key(key_type)
    inter = _issue(f"Bench Intermediate {key_type}", inter_key, (root, root_key), ca=True)
    server_key = _key(key_type)
    server = _issue("localhost", server_key, (inter, inter_key), ca=False, server=True)
    client_key = _key(key_type)
    client = _issue("bench-client", client_key, (inter, inter_key), ca=False)
    pems = {
        "root": _pem(root),
        "server_chain": _pem(server) + _pem(inter),
        "server_key": _pem(server_key),
        "client_chain": _pem(client) + _pem(inter),
        "client_key": _pem(client_key),
    }
    paths = {name: directory / f"{key_type}-{name}.pem" for name in pems}
    for name, path in paths.items():
        path.write_text(pems[name])
    combined = directory / f"{key_type}-client-combined.pem"
    combined.write_text(pems["client_chain"] + pems["client_key"])
    return Pki(
        key_type=key_type,
        root=paths["root"],
        server_chain=paths["server_chain"],
        server_key=paths["server_key"],
        client_chain=paths["client_chain"],
        client_key=paths["client_key"],
        client_combined=combined,
        pems=pems,
    )
