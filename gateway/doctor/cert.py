"""``gateway doctor cert``: a PEM bundle (and its key, and a CA file) explained in words.

What a person with a certificate file wants to know, in the order they usually need it:

1. **What is in the file**: each certificate, who issued it, whether it is a CA, its dates and key.
2. **Order**: nginx and Kong send the bundle as written and take the *first* certificate as the server's (leaf)
   certificate. The leaf comes first, then its issuer, then that one's issuer. An intermediate before the leaf is the
   classic mistake: with the leaf's key nginx refuses it (``key values mismatch``), and so does ``gateway start``.
3. **Completeness**: clients have roots, not intermediates. A bundle should hold the leaf and every intermediate,
   and no root (a root is trusted only from the client's own store, so sending it is wasted bytes). A lone leaf whose
   issuer is missing fails with 20 / 21 on clients that do not happen to have the intermediate.
4. **Key**: whether ``--key`` is the private half of the leaf.
5. **Dates**: expired or not yet valid certificates, and those expiring within 30 days.
6. **Names**: the names the leaf covers, and with ``--name`` whether it covers that one, with ``X509_check_host``'s
   rules (``gateway.tls.engine.hostnames.check_host``, the check nginx and the gateway make).
7. **CA flags**: every issuer must be a CA (``basicConstraints CA:TRUE``, ``keyCertSign`` if it has a keyUsage).
8. **Verification** (``--ca``): the chain verified as a TLS client would, by the gateway's own ``verify_chain`` (the
   function mtls-auth and the upstream checks use), OpenSSL's code and text on failure, and the *depth* the chain
   needs: the number of intermediates between the leaf and the trusted root. That number is what Kong's
   ``tls_verify_depth`` / ``proxy_ssl_verify_depth`` / ``lua_ssl_verify_depth`` and mtls-auth's ``verify_depth`` must
   be at least, and what ``openssl verify -verify_depth`` accepts (the tests cross-check the two).

The verdicts come from the engine (``gateway.tls.engine.x509``): PEM loading, key match, host check, verification
and OpenSSL's wording. What this module adds is the *structure* of the bundle (which certificate issued which,
found by name and signature, as OpenSSL builds chains) and the words. ``examine`` is pure (certificates in,
findings out); ``gateway check`` runs it on the certificate settings too (``gateway.doctor.conf``).
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import NameOID

from gateway.doctor.findings import Finding, Kind
from gateway.tls.engine.hostnames import check_host, is_ip_literal
from gateway.tls.engine.verify_codes import VerifyCode, verify_error_text
from gateway.tls.engine.x509 import (
    PemError,
    TrustStore,
    key_matches_cert,
    load_pem_chain,
    load_pem_private_key,
    verify_chain,
)

__all__ = [
    "EXPIRY_WARNING_DAYS",
    "diagnose",
    "examine",
    "examine_trust",
    "parse_certificates",
    "parse_key",
    "read_file",
]

EXPIRY_WARNING_DAYS: Final = 30
"""A certificate expiring within this many days is a warning (a problem once expired)."""

_DEPTH_SETTINGS: Final = (
    "tls_verify_depth >= {n} on a service (or proxy_ssl_verify_depth globally; default 1), "
    "lua_ssl_verify_depth >= {n} for https health checks (default 1), "
    "verify_depth >= {n} in mtls-auth (unset: no limit)"
)

# Why a verification against --ca failed, by OpenSSL code; {ca}, {top} and {issuer} are filled in.
_VERIFY_FIXES: Final[dict[int, str]] = {
    VerifyCode.UNABLE_TO_GET_ISSUER_CERT: (
        "{ca} holds an intermediate but not the root above it: OpenSSL needs the self-signed root as the trust anchor "
        "(nginx and Kong do not accept partial chains); add the root to {ca}."
    ),
    VerifyCode.CERT_NOT_YET_VALID: "a certificate is not valid yet: see its dates above, and the clocks.",
    VerifyCode.CERT_HAS_EXPIRED: "a certificate has expired: renew it (see the dates above).",
    VerifyCode.DEPTH_ZERO_SELF_SIGNED_CERT: (
        "the leaf is self-signed and {ca} does not hold it: trust this very certificate (put it in {ca}) or use a "
        "certificate issued by a CA."
    ),
    VerifyCode.SELF_SIGNED_CERT_IN_CHAIN: (
        "the bundle ends with a self-signed root that {ca} does not hold: use that root's CA file, or remove the root "
        "from the bundle."
    ),
    VerifyCode.UNABLE_TO_GET_ISSUER_CERT_LOCALLY: (
        "nothing in the bundle or {ca} issued {top} (its issuer is {issuer}): put the root of this chain in {ca}, or "
        "append {issuer} to the bundle if it is an intermediate."
    ),
    VerifyCode.UNABLE_TO_VERIFY_LEAF_SIGNATURE: (
        "the leaf's issuer ({issuer}) is neither in the bundle nor in {ca}: append the intermediate to the bundle."
    ),
    VerifyCode.INVALID_PURPOSE: "a certificate's extendedKeyUsage does not allow it to serve TLS.",
    79: "an issuer is not a CA (basicConstraints CA:FALSE, or keyUsage without keyCertSign): reissue it as a CA.",
}


# ----------------------------------------------------------------------------------------------------------
# Reading (files -> bytes -> objects), each failure a finding
# ----------------------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------------------
# Words for certificates
# ----------------------------------------------------------------------------------------------------------


def _cn(name: x509.Name) -> str:
    """``CN=...`` when the name has a CN, else the whole name (RFC 4514)."""
    cns = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    if cns:
        value = cns[0].value
        return f"CN={value if isinstance(value, str) else value.decode('utf-8', 'replace')}"
    return name.rfc4514_string() or "(empty name)"


def _date(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _days(span: datetime.timedelta) -> str:
    """``1 day``, ``12 days``, ``5 hours`` (under a day)."""
    if span.days >= 1:
        return f"{span.days} day" if span.days == 1 else f"{span.days} days"
    hours = max(1, span.seconds // 3600)
    return f"{hours} hour" if hours == 1 else f"{hours} hours"


def _key_words(cert: x509.Certificate) -> str:
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


def _basic_constraints(cert: x509.Certificate) -> x509.BasicConstraints | None:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return None


def _ca_words(cert: x509.Certificate) -> str:
    bc = _basic_constraints(cert)
    if bc is None:
        return "no basicConstraints"
    if not bc.ca:
        return "CA:FALSE"
    return "CA:TRUE" if bc.path_length is None else f"CA:TRUE, pathlen:{bc.path_length}"


def _cert_sign_missing(cert: x509.Certificate) -> bool:
    """Whether the certificate has a keyUsage that does not allow signing certificates."""
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return not usage.key_cert_sign


def _is_ca(cert: x509.Certificate) -> bool:
    bc = _basic_constraints(cert)
    return bc is not None and bc.ca


def _issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    """Whether ``parent`` issued ``child``: the names chain and ``parent``'s key verifies ``child``'s signature."""
    if child.issuer != parent.subject:
        return False
    try:
        child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _self_signed(cert: x509.Certificate) -> bool:
    return _issued_by(cert, cert)


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _ref(certs: Sequence[x509.Certificate], i: int) -> str:
    """``certificate 2 (CN=Test Intermediate)``."""
    return f"certificate {i + 1} ({_cn(certs[i].subject)})"


# ----------------------------------------------------------------------------------------------------------
# The bundle's structure
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Shape:
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
    def of(cls, certs: Sequence[x509.Certificate], key: PrivateKeyTypes | None) -> _Shape:
        first_copy: dict[bytes, int] = {}
        duplicates: list[tuple[int, int]] = []
        unique: list[int] = []
        for i, cert in enumerate(certs):
            der = _der(cert)
            if der in first_copy:
                duplicates.append((i, first_copy[der]))
            else:
                first_copy[der] = i
                unique.append(i)
        issuers = {j for j in unique for i in unique if i != j and _issued_by(certs[i], certs[j])}
        key_index = next((i for i in unique if key_matches_cert(key, certs[i])), None) if key is not None else None
        if key_index is not None and key_index not in issuers:
            leaf = key_index
        else:
            candidates = [i for i in unique if i not in issuers]
            if not candidates or candidates[0] == 0:
                leaf = 0
            else:
                leaf = next((i for i in candidates if not _is_ca(certs[i])), candidates[0])
        path = [leaf]
        while not _self_signed(certs[path[-1]]):
            top = certs[path[-1]]
            above = next((j for j in unique if j not in path and _issued_by(top, certs[j])), None)
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


def _chain_path(leaf: x509.Certificate, pool: Sequence[x509.Certificate]) -> list[x509.Certificate]:
    """The leaf and its issuers found in ``pool`` (bundle + CA file), up to a self-signed one or a gap."""
    path = [leaf]
    while not _self_signed(path[-1]):
        above = next((c for c in pool if all(c is not p for p in path) and _issued_by(path[-1], c)), None)
        if above is None:
            break
        path.append(above)
    return path


# ----------------------------------------------------------------------------------------------------------
# Checks: each returns findings
# ----------------------------------------------------------------------------------------------------------


def _describe(certs: Sequence[x509.Certificate], shape: _Shape) -> list[Finding]:
    copies = dict(shape.duplicates)
    findings = []
    for i, cert in enumerate(certs):
        if i in copies:
            role = f"a copy of certificate {copies[i] + 1}"
        elif i == shape.leaf:
            role = "the leaf"
        elif i in shape.path:
            role = "the root CA, self-signed" if _self_signed(cert) else "an intermediate CA"
        else:
            role = "not in the leaf's chain"
        words = (
            f"certificate {i + 1} of {len(certs)}: {_cn(cert.subject)}, issued by {_cn(cert.issuer)}; {role} "
            f"({_ca_words(cert)}); valid {_date(cert.not_valid_before_utc)} to {_date(cert.not_valid_after_utc)}; "
            f"{_key_words(cert)}."
        )
        findings.append(Finding.of(Kind.CERTIFICATE, words, index=i + 1, dn=cert.subject.rfc4514_string()))
    return findings


def _order(certs: Sequence[x509.Certificate], shape: _Shape) -> list[Finding]:
    path_words = ", then ".join(_cn(certs[i].subject) for i in shape.path)
    if shape.leaf != 0:
        first = "intermediate before leaf" if _is_ca(certs[0]) else "the leaf is not first"
        owner = ", the one the key belongs to" if shape.key_index == shape.leaf else ""
        return [
            Finding.of(
                Kind.LEAF_NOT_FIRST,
                f"{first}: {_ref(certs, 0)} comes first but the leaf is {_ref(certs, shape.leaf)}{owner}. nginx and "
                "Kong take the first certificate as the server's: with the leaf's key they refuse the pair (key "
                "values mismatch), and so does gateway start.",
                f"put the leaf first, then each issuer: {path_words}.",
                leaf=shape.leaf + 1,
            )
        ]
    if list(shape.path) != list(range(len(shape.path))):
        return [
            Finding.of(
                Kind.OUT_OF_ORDER,
                "the leaf is first but the certificates after it are not in issuer order. OpenSSL clients sort them "
                "out, stricter TLS 1.2 clients do not.",
                f"list each certificate right after the one it issued: {path_words}.",
            )
        ]
    followed = ", and each certificate is followed by its issuer" if len(shape.path) > 1 else ""
    return [Finding.of(Kind.ORDER_OK, f"the leaf ({_cn(certs[0].subject)}) is first{followed}.")]


def _membership(certs: Sequence[x509.Certificate], shape: _Shape) -> list[Finding]:
    findings = [
        Finding.of(
            Kind.DUPLICATE,
            f"certificate {i + 1} is a copy of certificate {k + 1}.",
            "remove the copy.",
            index=i + 1,
        )
        for i, k in shape.duplicates
    ]
    for i in shape.extras:
        what = "a self-signed certificate that" if _self_signed(certs[i]) else "a certificate that"
        findings.append(
            Finding.of(
                Kind.EXTRA_CERTIFICATE,
                f"{_ref(certs, i)} is {what} issued none of the leaf's chain: nginx and Kong send it with every "
                "handshake for nothing.",
                "remove it (or, if it belongs to another certificate, keep it in that one's bundle).",
                index=i + 1,
            )
        )
    top = shape.path[-1]
    if len(shape.path) > 1 and _self_signed(certs[top]):
        findings.append(
            Finding.of(
                Kind.ROOT_INCLUDED,
                f"the root CA is in the bundle: {_ref(certs, top)}. Clients already have it (a root is trusted only "
                "from the client's own store), and nginx and Kong send it needlessly with every handshake.",
                "remove it; keep the leaf and the intermediates.",
                index=top + 1,
            )
        )
    return findings


def _key(certs: Sequence[x509.Certificate], shape: _Shape) -> list[Finding]:
    leaf = _ref(certs, shape.leaf)
    if shape.key_index == shape.leaf:
        return [Finding.of(Kind.KEY_MATCH, f"the key matches the leaf, {leaf}.")]
    if shape.key_index is not None:
        whose = f"it belongs to {_ref(certs, shape.key_index)}, a CA certificate, not to the leaf {leaf}"
    else:
        whose = f"it is not the private half of the leaf, {leaf}, nor of any certificate of the bundle"
    return [
        Finding.of(
            Kind.KEY_MISMATCH,
            f"the key does not match the certificate: {whose}. nginx and Kong refuse the pair (key values mismatch).",
            "use the key made with this certificate's request; `openssl x509 -noout -pubkey` and `openssl pkey "
            "-pubout` print the same public key when they belong together.",
        )
    ]


def _validity(certs: Sequence[x509.Certificate], shape: _Shape, now: datetime.datetime) -> list[Finding]:
    copies = dict(shape.duplicates)
    findings = []
    soonest: tuple[datetime.datetime, int] | None = None
    for i, cert in enumerate(certs):
        if i in copies:
            continue
        starts, ends = cert.not_valid_before_utc, cert.not_valid_after_utc
        renew = "renew it" if i == shape.leaf else "get the current one from the CA that issued it"
        if now < starts:
            code = VerifyCode.CERT_NOT_YET_VALID
            findings.append(
                Finding.of(
                    Kind.NOT_YET_VALID,
                    f"{_ref(certs, i)} is not valid yet: it starts on {_date(starts)}. Clients fail with "
                    f"{int(code)} {verify_error_text(code)}.",
                    "wait, or check the clock of the machine that issued it.",
                    index=i + 1,
                    code=int(code),
                )
            )
        elif now > ends:
            code = VerifyCode.CERT_HAS_EXPIRED
            findings.append(
                Finding.of(
                    Kind.EXPIRED,
                    f"{_ref(certs, i)} expired on {_date(ends)} ({_days(now - ends)} ago). Clients fail with "
                    f"{int(code)} {verify_error_text(code)}.",
                    f"{renew}.",
                    index=i + 1,
                    code=int(code),
                )
            )
        elif ends - now < datetime.timedelta(days=EXPIRY_WARNING_DAYS):
            findings.append(
                Finding.of(
                    Kind.EXPIRING_SOON,
                    f"{_ref(certs, i)} expires on {_date(ends)}, in {_days(ends - now)}.",
                    f"{renew} soon.",
                    index=i + 1,
                )
            )
        if soonest is None or ends < soonest[0]:
            soonest = (ends, i)
    if not findings and soonest is not None:
        findings.append(
            Finding.of(
                Kind.VALIDITY_OK,
                f"every certificate is within its dates; the first to expire is {_ref(certs, soonest[1])}, on "
                f"{_date(soonest[0])}.",
            )
        )
    return findings


def _ca_flags(certs: Sequence[x509.Certificate], shape: _Shape) -> list[Finding]:
    findings = []
    leaf = certs[shape.leaf]
    if _is_ca(leaf) and not _self_signed(leaf):
        findings.append(
            Finding.of(
                Kind.LEAF_IS_CA,
                f"the leaf, {_ref(certs, shape.leaf)}, is a CA certificate (CA:TRUE). Clients accept it, but it can "
                "sign certificates for any name: a server certificate should say CA:FALSE.",
                "reissue it with basicConstraints CA:FALSE.",
            )
        )
    for child, parent in zip(shape.path, shape.path[1:], strict=False):
        cert = certs[parent]
        if _is_ca(cert) and not _cert_sign_missing(cert):
            continue
        why = f"its keyUsage lacks keyCertSign ({_ca_words(cert)})" if _is_ca(cert) else _ca_words(cert)
        findings.append(
            Finding.of(
                Kind.ISSUER_NOT_CA,
                f"{_ref(certs, parent)} issued {_ref(certs, child)} but is not a CA ({why}): OpenSSL rejects the "
                f"chain with 79 {verify_error_text(79)}.",
                "reissue the issuer with basicConstraints CA:TRUE (and keyCertSign in its keyUsage).",
                index=parent + 1,
                code=79,
            )
        )
    return findings


def _names(leaf: x509.Certificate, name: str | None) -> list[Finding]:
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        dns, ips = [], []
    else:
        dns = san.get_values_for_type(x509.DNSName)
        ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    covered = [f"DNS:{d}" for d in dns] + [f"IP:{ip}" for ip in ips]
    findings = []
    if covered:
        findings.append(Finding.of(Kind.NAMES, f"names covered by the leaf: {', '.join(covered)}.", names=covered))
    if not dns:
        cn = _cn(leaf.subject)
        findings.append(
            Finding.of(
                Kind.CN_ONLY,
                f"the leaf has no DNS name in subjectAltName: OpenSSL (and so nginx) falls back to its {cn}, but "
                "browsers and most other clients ignore the CN.",
                "reissue it with the names in subjectAltName.",
            )
        )
    if name is not None:
        findings.append(_name_check(leaf, name, ips))
    return findings


def _name_check(leaf: x509.Certificate, name: str, ips: Sequence[str]) -> Finding:
    if check_host(leaf, name):
        return Finding.of(Kind.NAME_MATCH, f"the leaf covers {name} (checked as nginx does, with X509_check_host).")
    note = ""
    if is_ip_literal(name) and name.strip("[]") in ips:
        note = (
            f" {name} is one of its IP SANs, which browsers and curl accept, but nginx checking an upstream compares "
            "an IP as text with the DNS names and the CN only."
        )
    return Finding.of(
        Kind.NAME_MISMATCH,
        f"the leaf does not cover {name}: a client checking the name refuses it (nginx: upstream SSL certificate "
        f'does not match "{name}").{note}',
        "reissue the certificate with this name in subjectAltName (a wildcard covers exactly one label), or connect "
        "with a name it covers.",
        name=name,
    )


def _trust_unknown(certs: Sequence[x509.Certificate], shape: _Shape) -> list[Finding]:
    """Without ``--ca``: what the end of the chain says about what clients need."""
    top = certs[shape.path[-1]]
    if _self_signed(top):
        if len(shape.path) > 1:
            return []  # the root is included: _membership said so
        code = VerifyCode.DEPTH_ZERO_SELF_SIGNED_CERT
        return [
            Finding.of(
                Kind.SELF_SIGNED,
                f"{_ref(certs, shape.path[0])} is self-signed: clients fail with {int(code)} {verify_error_text(code)} "
                "unless they trust this very certificate.",
                "give it to the clients as their CA (curl --cacert, Kong's ca_certificates), or use a certificate "
                "issued by a CA.",
                code=int(code),
            )
        ]
    issuer = _cn(top.issuer)
    if len(shape.path) == 1:
        codes = (VerifyCode.UNABLE_TO_GET_ISSUER_CERT_LOCALLY, VerifyCode.UNABLE_TO_VERIFY_LEAF_SIGNATURE)
        fails = " / ".join(f"{int(c)} {verify_error_text(c)}" for c in codes)
        return [
            Finding.of(
                Kind.LEAF_ONLY,
                f"leaf only: the bundle holds the leaf but not its issuer, {issuer}. Clients that do not have "
                f"{issuer} fail with {fails}.",
                f"append the intermediate {issuer} after the leaf. (If {issuer} is itself a root your clients trust, "
                "the lone leaf is right: confirm with `gateway doctor cert FILE --ca ROOTFILE`.)",
                issuer=top.issuer.rfc4514_string(),
            )
        ]
    return [
        Finding.of(
            Kind.ISSUER_ABSENT,
            f"the chain ends with {_cn(top.subject)}, issued by {issuer}, which is not in the bundle, as it should be: "
            "clients have their own roots. Verify against it with --ca.",
        )
    ]


def _depth_needed(chain: Sequence[x509.Certificate], store: TrustStore, most: int) -> int | None:
    """The smallest verify depth at which the engine accepts the chain (None if none up to ``most``)."""
    for depth in range(most + 1):
        if verify_chain(chain, store, depth).ok:
            return depth
    return None


def _trust(
    certs: Sequence[x509.Certificate], shape: _Shape, cas: Sequence[x509.Certificate], ca_label: str
) -> list[Finding]:
    """With ``--ca``: verify as a TLS client does, then the depth and what a client with only the root lacks."""
    chain = shape.ordered(certs)
    store = TrustStore(cas)
    order_note = " (in the corrected order, leaf first)" if shape.leaf != 0 else ""
    verdict = verify_chain(chain, store)
    if not verdict.ok:
        top = certs[shape.path[-1]]
        fix = _VERIFY_FIXES.get(verdict.code, "see OpenSSL's reason.")
        return [
            Finding.of(
                Kind.VERIFY_FAILED,
                f"the chain does not verify against {ca_label}{order_note}: OpenSSL says {verdict.code}:"
                f"{verify_error_text(verdict.code)}, at depth {verdict.depth}.",
                fix.format(ca=ca_label, top=_cn(top.subject), issuer=_cn(top.issuer)),
                code=verdict.code,
                depth=verdict.depth,
            )
        ]
    findings = [
        Finding.of(Kind.VERIFIED, f"the chain verifies against {ca_label}{order_note}, as a TLS client verifies it.")
    ]
    depth = _depth_needed(chain, store, len(chain) + len(cas))
    if depth is not None:
        findings.append(_depth_finding(chain, cas, depth))
    findings.extend(_missing_intermediates(certs, shape, chain, cas, ca_label))
    return findings


def _depth_finding(chain: Sequence[x509.Certificate], cas: Sequence[x509.Certificate], depth: int) -> Finding:
    if depth == 0:
        return Finding.of(
            Kind.DEPTH_NEEDED,
            "depth needed: 0: the leaf is issued by the trusted CA itself (no intermediate), so every verify depth "
            "accepts it (tls_verify_depth, proxy_ssl_verify_depth, lua_ssl_verify_depth, mtls-auth's verify_depth).",
            depth=0,
        )
    built = _chain_path(chain[0], [*chain[1:], *cas])
    between = [c for c in built[1:] if not _self_signed(c)]
    names = f" ({', '.join(_cn(c.subject) for c in between)})" if len(between) == depth else ""
    plural = "intermediate" if depth == 1 else "intermediates"
    return Finding.of(
        Kind.DEPTH_NEEDED,
        f"depth needed: {depth}. OpenSSL (and so nginx and Kong) counts the intermediate CAs between the leaf and the "
        "trusted root; the leaf and the root are not counted (depth 0: the leaf is issued by the trusted CA itself). "
        f"This chain has {depth} {plural}{names}. Set {_DEPTH_SETTINGS.format(n=depth)}. With less, verification "
        f"fails with 22 {verify_error_text(22)}, as `openssl verify -verify_depth {depth - 1}` does.",
        depth=depth,
    )


def _missing_intermediates(
    certs: Sequence[x509.Certificate],
    shape: _Shape,
    chain: Sequence[x509.Certificate],
    cas: Sequence[x509.Certificate],
    ca_label: str,
) -> list[Finding]:
    """An intermediate the chain borrows from the CA file: clients that have only the root fail without it."""
    roots = [c for c in cas if _self_signed(c)]
    if len(roots) == len(cas):
        return []
    verdict = verify_chain(chain, TrustStore(roots))
    if verdict.ok or verdict.code not in (2, 20, 21):
        return []
    bundle = {_der(c) for c in certs}
    borrowed = [c for c in _chain_path(chain[0], [*chain[1:], *cas])[1:] if not _self_signed(c)]
    borrowed = [c for c in borrowed if _der(c) not in bundle]
    names = ", ".join(_cn(c.subject) for c in borrowed) or "an intermediate"
    kind, head = (Kind.LEAF_ONLY, "leaf only") if len(shape.path) == 1 else (Kind.INTERMEDIATE_MISSING, "incomplete")
    return [
        Finding.of(
            kind,
            f"{head}: the chain verifies only because {ca_label} holds {names}; clients that have only the root fail "
            f"with {verdict.code} {verify_error_text(verdict.code)}.",
            f"append {names} to the bundle, after the certificate it issued.",
            code=verdict.code,
        )
    ]


# ----------------------------------------------------------------------------------------------------------
# Entry points
# ----------------------------------------------------------------------------------------------------------


def examine(
    certs: Sequence[x509.Certificate],
    *,
    key: PrivateKeyTypes | None = None,
    cas: Sequence[x509.Certificate] | None = None,
    name: str | None = None,
    ca_label: str = "the CA file",
    now: datetime.datetime | None = None,
) -> list[Finding]:
    """Everything worth saying about a bundle (leaf first, as nginx/Kong read it) and, if given, its key, a CA set
    to verify against, and a host name.

    Args:
        certs: the bundle's certificates in file order (at least one).
        key: the private key meant for the leaf.
        cas: trusted CAs: verification, depth and missing intermediates are then decided by ``verify_chain``.
        name: a host name the leaf should cover (``check_host``).
        ca_label: how the findings name the CA set (its file name).
        now: only for tests.
    """
    if not certs:
        raise ValueError("no certificate to examine")
    moment = now if now is not None else datetime.datetime.now(datetime.UTC)
    shape = _Shape.of(certs, key)
    findings = _describe(certs, shape)
    findings += _order(certs, shape)
    findings += _membership(certs, shape)
    if key is not None:
        findings += _key(certs, shape)
    findings += _validity(certs, shape, moment)
    findings += _ca_flags(certs, shape)
    findings += _names(certs[shape.leaf], name)
    findings += _trust_unknown(certs, shape) if cas is None else _trust(certs, shape, cas, ca_label)
    return findings


def examine_trust(certs: Sequence[x509.Certificate], now: datetime.datetime | None = None) -> list[Finding]:
    """A trust bundle (``proxy_ssl_trusted_certificate``, a CA file): only the dates matter, order does not."""
    moment = now if now is not None else datetime.datetime.now(datetime.UTC)
    shape = _Shape(0, (), (), tuple(range(len(certs))), None)
    return [f for f in _validity(certs, shape, moment) if f.kind is not Kind.VALIDITY_OK]


def diagnose(
    cert_path: str,
    key_path: str | None = None,
    ca_path: str | None = None,
    name: str | None = None,
    *,
    now: datetime.datetime | None = None,
) -> list[Finding]:
    """``gateway doctor cert FILE [--key KEY] [--ca CAFILE] [--name HOST]``: the findings, files read here."""
    data = read_file(cert_path, "the certificate file")
    if isinstance(data, Finding):
        return [data]
    certs = parse_certificates(data, cert_path)
    if isinstance(certs, Finding):
        return [certs]
    findings: list[Finding] = []
    key: PrivateKeyTypes | None = None
    if key_path is not None:
        key_data = read_file(key_path, "the key file")
        parsed = parse_key(key_data, key_path) if isinstance(key_data, bytes) else key_data
        if isinstance(parsed, Finding):
            findings.append(parsed)
        else:
            key = parsed
    cas: list[x509.Certificate] | None = None
    if ca_path is not None:
        ca_data = read_file(ca_path, "the CA file")
        loaded = parse_certificates(ca_data, ca_path) if isinstance(ca_data, bytes) else ca_data
        if isinstance(loaded, Finding):
            findings.append(loaded)
        else:
            cas = loaded
    return findings + examine(certs, key=key, cas=cas, name=name, ca_label=ca_path or "the CA file", now=now)
