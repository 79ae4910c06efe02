"""The demo's throwaway PKI: made with ``cryptography`` in the demo's temp dir, gone when the demo ends.

::

    Demo Root CA
    └── Demo Intermediate CA
        ├── demo.test, *.demo.test           the certificate the gateway serves by SNI (layer 1)
        ├── learner                          the learner's client certificate for mtls-auth (layer 2)
        ├── service-level, upstream-level,   the gateway's client certificates upstream, one per level (layer 3)
        │   global-level
        ├── mtls.demo.internal               the upstream that requires a client certificate
        ├── verify.demo.internal             the upstream the gateway verifies (layer 4): depth 1
        └── Demo Issuing CA
            └── deep.demo.internal           an upstream whose chain needs verify depth 2

EC P-256 keys (quick to make); every leaf can serve and authenticate (``serverAuth, clientAuth``). Each identity
is written as ``name.crt`` (the leaf), ``name.chain.crt`` (leaf + intermediates, what a server or client
presents) and ``name.key``, so the printed ``curl`` lines can point at them.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["DemoPki", "Identity"]

_CA_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)


@dataclass
class Identity:
    """A certificate, its key, the CAs above it (nearest first), and its files once written."""

    name: str
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    parents: list[Identity] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def cert_pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def chain_pem(self) -> str:
        """Leaf and intermediates (not the root): what a server or a client sends."""
        above = [p for p in self.parents if p.parents]
        return self.cert_pem + "".join(p.cert_pem for p in above)

    @property
    def key_pem(self) -> str:
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()

    @property
    def slug(self) -> str:
        """The files' stem: ``Demo Root CA`` -> ``demo-root-ca`` (no spaces in a curl line)."""
        return self.name.lower().replace(" ", "-").replace("*", "star")

    def write(self, directory: Path) -> None:
        for suffix, text in (("crt", self.cert_pem), ("chain.crt", self.chain_pem), ("key", self.key_pem)):
            path = directory / f"{self.slug}.{suffix}"
            path.write_text(text)
            self.files[suffix] = path
        self.files["key"].chmod(0o600)


def _issue(name: str, issuer: Identity | None, *, ca: bool, sans: tuple[str, ...] = ()) -> Identity:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer is not None else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer is not None:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key())
        builder = builder.add_extension(aki, critical=False)
    if ca:
        builder = builder.add_extension(_CA_USAGE, critical=True)
    else:
        usages = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        names = [x509.DNSName(n) for n in (sans or (name,))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(issuer.key if issuer is not None else key, hashes.SHA256())
    parents = [issuer, *issuer.parents] if issuer is not None else []
    return Identity(name, cert, key, parents)


@dataclass
class DemoPki:
    """Every identity of the demo (see the module docstring), written under ``directory``."""

    directory: Path
    root: Identity
    intermediate: Identity
    issuing: Identity
    served: Identity
    learner: Identity
    levels: dict[str, Identity]
    mtls_upstream: Identity
    verify_upstream: Identity
    deep_upstream: Identity

    @classmethod
    def make(cls, directory: Path) -> DemoPki:
        root = _issue("Demo Root CA", None, ca=True)
        inter = _issue("Demo Intermediate CA", root, ca=True)
        issuing = _issue("Demo Issuing CA", inter, ca=True)
        pki = cls(
            directory=directory,
            root=root,
            intermediate=inter,
            issuing=issuing,
            served=_issue("demo.test", inter, ca=False, sans=("demo.test", "*.demo.test")),
            learner=_issue("learner", inter, ca=False),
            levels={level: _issue(f"{level}-level", inter, ca=False) for level in ("service", "upstream", "global")},
            mtls_upstream=_issue("mtls.demo.internal", inter, ca=False),
            verify_upstream=_issue("verify.demo.internal", inter, ca=False),
            deep_upstream=_issue("deep.demo.internal", issuing, ca=False),
        )
        directory.mkdir(parents=True, exist_ok=True)
        for identity in pki.identities():
            identity.write(directory)
        return pki

    def identities(self) -> list[Identity]:
        return [
            self.root,
            self.intermediate,
            self.issuing,
            self.served,
            self.learner,
            *self.levels.values(),
            self.mtls_upstream,
            self.verify_upstream,
            self.deep_upstream,
        ]
