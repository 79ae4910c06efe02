"""What upstream TLS is made of, parsed once: client certificates and the canonical order of a CA set.

Shared by the proxied traffic's profiles (``profile``), the health-check probes (``probes``) and the settings-wide
inputs (``globals``); it parses PEM with the engine and holds no configuration of its own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from gateway.tls.engine.x509 import PemError, chain_digest, key_matches_cert, load_pem_chain, load_pem_private_key

__all__ = ["ClientCertificate", "client_certificate_from_row", "sorted_unique", "with_source"]


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


def with_source(cert: ClientCertificate, source: str) -> ClientCertificate:
    """``cert`` as found at another level of the precedence (the same certificate, another ``source``)."""
    if cert.source == source:
        return cert
    return ClientCertificate(cert.chain, cert.key, source, cert.entity_id)


def sorted_unique(certs: Iterable[x509.Certificate]) -> list[x509.Certificate]:
    """CAs in a canonical order (by DER digest, duplicates removed): the trust digest ignores id order, as Kong's
    CA-store cache key sorts the ids."""
    by_digest: dict[str, x509.Certificate] = {}
    for cert in certs:
        by_digest[hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()] = cert
    return [by_digest[d] for d in sorted(by_digest)]
