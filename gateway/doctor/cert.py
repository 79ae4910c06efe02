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
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from gateway.doctor.bundle import (
    Shape,
    ca_words,
    cert_sign_missing,
    cn_of,
    date_of,
    days_of,
    is_ca,
    key_words,
    ref,
    self_signed,
)
from gateway.doctor.findings import Finding, Kind
from gateway.doctor.reading import parse_certificates, parse_key, read_file
from gateway.doctor.trust import trust_unknown, verify_against
from gateway.tls.engine.hostnames import check_host, is_ip_literal
from gateway.tls.engine.verify_codes import VerifyCode, verify_error_text

__all__ = [
    "EXPIRY_WARNING_DAYS",
    "diagnose",
    "examine",
    "examine_trust",
]

EXPIRY_WARNING_DAYS: Final = 30
"""A certificate expiring within this many days is a warning (a problem once expired)."""


# ----------------------------------------------------------------------------------------------------------
# Checks: each returns findings
# ----------------------------------------------------------------------------------------------------------


def _describe(certs: Sequence[x509.Certificate], shape: Shape) -> list[Finding]:
    copies = dict(shape.duplicates)
    findings = []
    for i, cert in enumerate(certs):
        if i in copies:
            role = f"a copy of certificate {copies[i] + 1}"
        elif i == shape.leaf:
            role = "the leaf"
        elif i in shape.path:
            role = "the root CA, self-signed" if self_signed(cert) else "an intermediate CA"
        else:
            role = "not in the leaf's chain"
        words = (
            f"certificate {i + 1} of {len(certs)}: {cn_of(cert.subject)}, issued by {cn_of(cert.issuer)}; {role} "
            f"({ca_words(cert)}); valid {date_of(cert.not_valid_before_utc)} to {date_of(cert.not_valid_after_utc)}; "
            f"{key_words(cert)}."
        )
        findings.append(Finding.of(Kind.CERTIFICATE, words, index=i + 1, dn=cert.subject.rfc4514_string()))
    return findings


def _order(certs: Sequence[x509.Certificate], shape: Shape) -> list[Finding]:
    path_words = ", then ".join(cn_of(certs[i].subject) for i in shape.path)
    if shape.leaf != 0:
        first = "intermediate before leaf" if is_ca(certs[0]) else "the leaf is not first"
        owner = ", the one the key belongs to" if shape.key_index == shape.leaf else ""
        return [
            Finding.of(
                Kind.LEAF_NOT_FIRST,
                f"{first}: {ref(certs, 0)} comes first but the leaf is {ref(certs, shape.leaf)}{owner}. nginx and "
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
    return [Finding.of(Kind.ORDER_OK, f"the leaf ({cn_of(certs[0].subject)}) is first{followed}.")]


def _membership(certs: Sequence[x509.Certificate], shape: Shape) -> list[Finding]:
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
        what = "a self-signed certificate that" if self_signed(certs[i]) else "a certificate that"
        findings.append(
            Finding.of(
                Kind.EXTRA_CERTIFICATE,
                f"{ref(certs, i)} is {what} issued none of the leaf's chain: nginx and Kong send it with every "
                "handshake for nothing.",
                "remove it (or, if it belongs to another certificate, keep it in that one's bundle).",
                index=i + 1,
            )
        )
    top = shape.path[-1]
    if len(shape.path) > 1 and self_signed(certs[top]):
        findings.append(
            Finding.of(
                Kind.ROOT_INCLUDED,
                f"the root CA is in the bundle: {ref(certs, top)}. Clients already have it (a root is trusted only "
                "from the client's own store), and nginx and Kong send it needlessly with every handshake.",
                "remove it; keep the leaf and the intermediates.",
                index=top + 1,
            )
        )
    return findings


def _key(certs: Sequence[x509.Certificate], shape: Shape) -> list[Finding]:
    leaf = ref(certs, shape.leaf)
    if shape.key_index == shape.leaf:
        return [Finding.of(Kind.KEY_MATCH, f"the key matches the leaf, {leaf}.")]
    if shape.key_index is not None:
        whose = f"it belongs to {ref(certs, shape.key_index)}, a CA certificate, not to the leaf {leaf}"
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


def _validity(certs: Sequence[x509.Certificate], shape: Shape, now: datetime.datetime) -> list[Finding]:
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
                    f"{ref(certs, i)} is not valid yet: it starts on {date_of(starts)}. Clients fail with "
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
                    f"{ref(certs, i)} expired on {date_of(ends)} ({days_of(now - ends)} ago). Clients fail with "
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
                    f"{ref(certs, i)} expires on {date_of(ends)}, in {days_of(ends - now)}.",
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
                f"every certificate is within its dates; the first to expire is {ref(certs, soonest[1])}, on "
                f"{date_of(soonest[0])}.",
            )
        )
    return findings


def _ca_flags(certs: Sequence[x509.Certificate], shape: Shape) -> list[Finding]:
    findings = []
    leaf = certs[shape.leaf]
    if is_ca(leaf) and not self_signed(leaf):
        findings.append(
            Finding.of(
                Kind.LEAF_IS_CA,
                f"the leaf, {ref(certs, shape.leaf)}, is a CA certificate (CA:TRUE). Clients accept it, but it can "
                "sign certificates for any name: a server certificate should say CA:FALSE.",
                "reissue it with basicConstraints CA:FALSE.",
            )
        )
    for child, parent in zip(shape.path, shape.path[1:], strict=False):
        cert = certs[parent]
        if is_ca(cert) and not cert_sign_missing(cert):
            continue
        why = f"its keyUsage lacks keyCertSign ({ca_words(cert)})" if is_ca(cert) else ca_words(cert)
        findings.append(
            Finding.of(
                Kind.ISSUER_NOT_CA,
                f"{ref(certs, parent)} issued {ref(certs, child)} but is not a CA ({why}): OpenSSL rejects the "
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
        cn = cn_of(leaf.subject)
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
    shape = Shape.of(certs, key)
    findings = _describe(certs, shape)
    findings += _order(certs, shape)
    findings += _membership(certs, shape)
    if key is not None:
        findings += _key(certs, shape)
    findings += _validity(certs, shape, moment)
    findings += _ca_flags(certs, shape)
    findings += _names(certs[shape.leaf], name)
    findings += trust_unknown(certs, shape) if cas is None else verify_against(certs, shape, cas, ca_label)
    return findings


def examine_trust(certs: Sequence[x509.Certificate], now: datetime.datetime | None = None) -> list[Finding]:
    """A trust bundle (``proxy_ssl_trusted_certificate``, a CA file): only the dates matter, order does not."""
    moment = now if now is not None else datetime.datetime.now(datetime.UTC)
    shape = Shape(0, (), (), tuple(range(len(certs))), None)
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
