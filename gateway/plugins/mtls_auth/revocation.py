"""Revocation status of a client certificate: OCSP (AIA responder URL) and CRLs (distribution points or configured).

Kong's modes (``revocation_check_mode``): ``SKIP`` checks nothing; ``IGNORE_CA_ERROR`` (the default) rejects a
certificate that is known to be revoked and lets it through, with a notice, when the status cannot be obtained;
``STRICT`` requires a definite "good": a certificate without any OCSP or CRL source, an unreachable responder or
a bad answer count as revoked.

Order of the sources: configured CRLs that cover the issuer (no network, the operator's explicit choice), then the
certificate's OCSP responders, then its CRL distribution points; the first definite answer wins. Only the leaf is
checked (Kong checks the leaf as well). Every answer is authenticated: an OCSP response must be signed by the
issuer or by a responder certificate the issuer signed for OCSP signing, and must be current; a CRL must be signed
by the issuer and not past its next update.

Caching. Definite answers are cached for ``cert_cache_ttl`` (read as milliseconds: Kong's docs disagree on the
unit, and 60 s is the sensible default) keyed by issuer key and serial number, in a process-wide cache so that a
configuration change does not throw them away; a downloaded CRL is cached per URL until its next update (at most
the same TTL). "Could not check" is never cached: a responder that comes back is used at once.
"""

from __future__ import annotations

import datetime
import enum
import hashlib
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

from gateway.plugins.httpclient import FetchError, fetch

__all__ = ["Checker", "Status", "Verdict", "crl_urls", "load_crls", "ocsp_urls"]

CLOCK_SKEW: Final = datetime.timedelta(minutes=5)
CACHE_LIMIT: Final = 10000


class Status(enum.Enum):
    GOOD = "good"
    REVOKED = "revoked"
    UNKNOWN = "unknown"  # could not check (no source, network error, bad answer)


@dataclass(frozen=True, slots=True)
class Verdict:
    status: Status
    reason: str = ""
    source: str = ""


def ocsp_urls(cert: x509.Certificate) -> list[str]:
    try:
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        return []
    return [
        desc.access_location.value
        for desc in aia
        if desc.access_method == AuthorityInformationAccessOID.OCSP
        and isinstance(desc.access_location, x509.UniformResourceIdentifier)
    ]


def crl_urls(cert: x509.Certificate) -> list[str]:
    try:
        points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except x509.ExtensionNotFound:
        return []
    urls: list[str] = []
    for point in points:
        for name in point.full_name or ():
            if isinstance(name, x509.UniformResourceIdentifier):
                urls.append(name.value)
    return urls


def load_crls(pems: Sequence[str]) -> list[x509.CertificateRevocationList]:
    """Configured CRLs (PEM, one or more per string). Raises ValueError naming the bad entry."""
    crls: list[x509.CertificateRevocationList] = []
    for index, text in enumerate(pems):
        data = text.encode() if isinstance(text, str) else text
        blocks = [b"-----BEGIN X509 CRL-----" + part for part in data.split(b"-----BEGIN X509 CRL-----")[1:]]
        if not blocks:
            raise ValueError(f"crls[{index}]: no PEM X509 CRL block")
        for block in blocks:
            crls.append(x509.load_pem_x509_crl(block))
    return crls


def _verify_signature(public_key: Any, signature: bytes, data: bytes, algorithm: Any) -> bool:
    try:
        if isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, data, padding.PKCS1v15(), algorithm)
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, data, ec.ECDSA(algorithm))
        elif isinstance(public_key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            public_key.verify(signature, data)
        else:
            return False
    except (InvalidSignature, TypeError, ValueError):
        return False
    return True


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, TypeError, ValueError):
        return False
    return True


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _crl_status(crl: x509.CertificateRevocationList, leaf: x509.Certificate, issuer: x509.Certificate) -> Verdict:
    """A CRL's answer for ``leaf`` (the CRL is known to cover ``issuer``)."""
    if not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
        return Verdict(Status.UNKNOWN, "CRL signature does not verify with the issuer's key")
    next_update = crl.next_update_utc
    if next_update is not None and next_update + CLOCK_SKEW < _utcnow():
        return Verdict(Status.UNKNOWN, f"CRL expired at {next_update.isoformat()}")
    if crl.get_revoked_certificate_by_serial_number(leaf.serial_number) is not None:
        return Verdict(Status.REVOKED, "certificate revoked (CRL)")
    return Verdict(Status.GOOD)


def _parse_crl(data: bytes) -> x509.CertificateRevocationList:
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_crl(data)
    return x509.load_der_x509_crl(data)


class _TtlCache:
    """A bounded mapping with per-entry expiry (oldest entries evicted first)."""

    def __init__(self, limit: int = CACHE_LIMIT) -> None:
        self._data: OrderedDict[Any, tuple[float, Any]] = OrderedDict()
        self._limit = limit

    def get(self, key: Any) -> Any:
        item = self._data.get(key)
        if item is None:
            return None
        expires, value = item
        if expires < time.monotonic():
            del self._data[key]
            return None
        return value

    def put(self, key: Any, value: Any, ttl: float) -> None:
        if ttl <= 0:
            return
        self._data[key] = (time.monotonic() + ttl, value)
        self._data.move_to_end(key)
        while len(self._data) > self._limit:
            self._data.popitem(last=False)

    def clear(self) -> None:
        self._data.clear()


STATUS_CACHE = _TtlCache()
CRL_CACHE = _TtlCache(256)


class Checker:
    """The revocation check of one mtls-auth instance (its timeout, proxy, configured CRLs and TTL)."""

    __slots__ = ("_config_key", "crls", "proxy", "timeout", "ttl")

    def __init__(
        self,
        *,
        timeout_ms: float,
        ttl_ms: float,
        crls: Sequence[x509.CertificateRevocationList] = (),
        proxy: tuple[str, int] | None = None,
    ) -> None:
        self.timeout = max(float(timeout_ms) / 1000.0, 0.001)
        self.ttl = max(float(ttl_ms) / 1000.0, 0.0)
        self.crls = tuple(crls)
        self.proxy = proxy
        self._config_key = hashlib.sha256(
            b"".join(crl.public_bytes(serialization.Encoding.DER) for crl in self.crls)
        ).hexdigest()

    def _key(self, leaf: x509.Certificate, issuer: x509.Certificate) -> tuple[Any, ...]:
        spki = issuer.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return (hashlib.sha256(spki).digest(), leaf.serial_number, self._config_key)

    def cached(self, leaf: x509.Certificate, issuer: x509.Certificate) -> Verdict | None:
        """A cached definite answer, or None (then ``await check``)."""
        found: Verdict | None = STATUS_CACHE.get(self._key(leaf, issuer))
        return found

    def configured(self, leaf: x509.Certificate, issuer: x509.Certificate) -> Verdict | None:
        """The answer of a configured CRL covering ``issuer``, if any (no I/O)."""
        for crl in self.crls:
            if crl.issuer == issuer.subject:
                verdict = _crl_status(crl, leaf, issuer)
                if verdict.status is not Status.UNKNOWN:
                    return verdict
        return None

    async def check(self, leaf: x509.Certificate, issuer: x509.Certificate) -> Verdict:
        """Ask the sources in order; definite answers are cached."""
        verdict = self.configured(leaf, issuer)
        if verdict is None:
            reasons: list[str] = []
            verdict = await self._online(leaf, issuer, reasons)
            if verdict is None:
                if not reasons:
                    reasons.append("no OCSP or CRL URL in the certificate")
                return Verdict(Status.UNKNOWN, "; ".join(reasons))
        STATUS_CACHE.put(self._key(leaf, issuer), verdict, self.ttl)
        return verdict

    async def _online(self, leaf: x509.Certificate, issuer: x509.Certificate, reasons: list[str]) -> Verdict | None:
        for url in ocsp_urls(leaf):
            verdict = await self._ocsp(url, leaf, issuer)
            if verdict.status is not Status.UNKNOWN:
                return verdict
            reasons.append(f"OCSP {url}: {verdict.reason}")
        for url in crl_urls(leaf):
            verdict = await self._crl(url, leaf, issuer)
            if verdict.status is not Status.UNKNOWN:
                return verdict
            reasons.append(f"CRL {url}: {verdict.reason}")
        return None

    async def _ocsp(self, url: str, leaf: x509.Certificate, issuer: x509.Certificate) -> Verdict:
        request = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA1()).build()
        try:
            response = await fetch(
                url,
                method="POST",
                body=request.public_bytes(serialization.Encoding.DER),
                content_type="application/ocsp-request",
                timeout=self.timeout,
                proxy=self.proxy,
            )
        except FetchError as exc:
            return Verdict(Status.UNKNOWN, str(exc))
        if response.status != 200:
            return Verdict(Status.UNKNOWN, f"responder answered HTTP {response.status}")
        try:
            answer = ocsp.load_der_ocsp_response(response.body)
        except ValueError as exc:
            return Verdict(Status.UNKNOWN, f"malformed OCSP response: {exc}")
        return _ocsp_status(answer, leaf, issuer, url)

    async def _crl(self, url: str, leaf: x509.Certificate, issuer: x509.Certificate) -> Verdict:
        crl = CRL_CACHE.get(url)
        if crl is None:
            try:
                response = await fetch(url, timeout=self.timeout, proxy=self.proxy)
            except FetchError as exc:
                return Verdict(Status.UNKNOWN, str(exc))
            if response.status != 200:
                return Verdict(Status.UNKNOWN, f"server answered HTTP {response.status}")
            try:
                crl = _parse_crl(response.body)
            except ValueError as exc:
                return Verdict(Status.UNKNOWN, f"malformed CRL: {exc}")
            if crl.issuer != issuer.subject:
                return Verdict(Status.UNKNOWN, "CRL issuer is not the certificate's issuer")
            ttl = self.ttl
            if crl.next_update_utc is not None:
                ttl = min(ttl, (crl.next_update_utc - _utcnow()).total_seconds())
            CRL_CACHE.put(url, crl, ttl)
        verdict = _crl_status(crl, leaf, issuer)
        return Verdict(verdict.status, verdict.reason, url)


def _ocsp_status(answer: ocsp.OCSPResponse, leaf: x509.Certificate, issuer: x509.Certificate, url: str) -> Verdict:
    if answer.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        return Verdict(Status.UNKNOWN, f"responder status {answer.response_status.name}")
    signer_key = issuer.public_key()
    for candidate in answer.certificates:
        if candidate == issuer:
            break
        if not _issued_by(candidate, issuer):
            continue
        try:
            eku = candidate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            continue
        if ExtendedKeyUsageOID.OCSP_SIGNING in eku:
            signer_key = candidate.public_key()
            break
    if not _verify_signature(signer_key, answer.signature, answer.tbs_response_bytes, answer.signature_hash_algorithm):
        return Verdict(Status.UNKNOWN, "OCSP response signature does not verify")
    now = _utcnow()
    for single in answer.responses:
        if single.serial_number != leaf.serial_number:
            continue
        if single.this_update_utc - CLOCK_SKEW > now:
            return Verdict(Status.UNKNOWN, "OCSP response not yet valid")
        if single.next_update_utc is not None and single.next_update_utc + CLOCK_SKEW < now:
            return Verdict(Status.UNKNOWN, "OCSP response is stale")
        status = single.certificate_status
        if status == ocsp.OCSPCertStatus.GOOD:
            return Verdict(Status.GOOD, "", url)
        if status == ocsp.OCSPCertStatus.REVOKED:
            return Verdict(Status.REVOKED, "certificate revoked (OCSP)", url)
        return Verdict(Status.UNKNOWN, "responder does not know the certificate")
    return Verdict(Status.UNKNOWN, "OCSP response does not cover the certificate")
