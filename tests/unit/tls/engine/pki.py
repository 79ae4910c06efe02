"""A tiny certificate factory for the TLS tests (EC P-256: fast), plus contexts and an in-memory pair driver.

Used by the unit and the integration tests of ``gateway.tls``. It differs from ``tests/fixtures/certs.py`` on
purpose: EC keys only (these tests make many chains), leaves without a CN or with IP SANs for the host-check
cases, and DER/bytes accessors that feed pyOpenSSL directly; entity-level tests use the shared factory.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from OpenSSL import SSL, crypto

from gateway.tls.engine.session import TlsSession
from gateway.tls.engine.x509 import RECORD_AND_ACCEPT, VerifyRecorder

NOW = datetime.datetime.now(datetime.UTC)
DAY = datetime.timedelta(days=1)


@dataclass
class Issued:
    """A certificate with its key and the chain it would present (itself first, then its issuers up to,
    but excluding, the self-signed root)."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    parents: list[Issued] = field(default_factory=list)

    @property
    def chain(self) -> list[x509.Certificate]:
        return [self.cert] + [p.cert for p in self.parents if p.cert.issuer != p.cert.subject]

    def chain_pem(self) -> bytes:
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.chain)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


def _name(cn: str | None) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else [])


def make_ca(cn: str, parent: Issued | None = None) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    issuer_name = parent.cert.subject if parent else _name(cn)
    signing_key = parent.key if parent else key
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - DAY)
        .not_valid_after(NOW + 365 * DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(signing_key, hashes.SHA256())
    )
    parents = ([parent, *parent.parents]) if parent else []
    return Issued(cert, key, parents)


def make_leaf(
    issuer: Issued | None,
    cn: str | None = "leaf.test",
    dns: Sequence[str] | None = None,
    ips: Sequence[str] = (),
    *,
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
) -> Issued:
    """A leaf for server and client auth; ``issuer=None`` makes it self-signed."""
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer.cert.subject if issuer else _name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or NOW - DAY)
        .not_valid_after(not_after or NOW + 30 * DAY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
    )
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in (dns if dns is not None else [])]
    names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(issuer.key if issuer else key, hashes.SHA256())
    parents = ([issuer, *issuer.parents]) if issuer else []
    return Issued(cert, key, parents)


def server_context(
    identity: Issued,
    *,
    alpn: Sequence[bytes] | None = None,
    request_client_cert: bool = False,
    max_version: int | None = None,
) -> SSL.Context:
    ctx = SSL.Context(SSL.TLS_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
    if max_version is not None:
        ctx.set_max_proto_version(max_version)
    ctx.use_privatekey(identity.key)
    ctx.use_certificate(identity.cert)
    for c in identity.chain[1:]:
        ctx.add_extra_chain_cert(c)
    if alpn is not None:
        offered = list(alpn)

        def select(conn: SSL.Connection, protos: list[bytes]) -> bytes:
            for p in protos:
                if p in offered:
                    return p
            return SSL.NO_OVERLAPPING_PROTOCOLS

        ctx.set_alpn_select_callback(select)
    if request_client_cert:
        ctx.set_verify(SSL.VERIFY_PEER, RECORD_AND_ACCEPT)
        ctx.set_options(SSL.OP_NO_TICKET)
    return ctx


def client_context(
    trusted: Sequence[Issued] = (),
    *,
    depth: int | None = None,
    recorder: VerifyRecorder = RECORD_AND_ACCEPT,
    identity: Issued | None = None,
    max_version: int | None = None,
) -> SSL.Context:
    ctx = SSL.Context(SSL.TLS_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
    if max_version is not None:
        ctx.set_max_proto_version(max_version)
    ctx.set_verify(SSL.VERIFY_PEER, recorder)
    if depth is not None:
        ctx.set_verify_depth(depth)
    store = ctx.get_cert_store()
    assert store is not None
    for t in trusted:
        store.add_cert(crypto.X509.from_cryptography(t.cert))
    if identity is not None:
        ctx.use_privatekey(identity.key)
        ctx.use_certificate(identity.cert)
        for c in identity.chain[1:]:
            ctx.add_extra_chain_cert(c)
    return ctx


def pump(client: TlsSession, server: TlsSession, first: bytes | None = None, rounds: int = 10) -> None:
    """Run the handshake in memory until neither side has anything to send (errors propagate)."""
    to_server = client.start() if first is None else first
    to_client = b""
    for _ in range(rounds):
        if to_server:
            _, to_client, _ = server.receive(to_server)
            to_server = b""
        if to_client:
            _, to_server, _ = client.receive(to_client)
            to_client = b""
        if not to_server and not to_client:
            return
