"""The bundle against trusted CAs (``--ca``): verification by the gateway's own ``verify_chain``, the depth it needs.

Without a CA set only what the bundle itself shows is said (``trust_unknown``); with one, ``verify_against`` gives
OpenSSL's code and text, the fix for it (``VERIFY_FIXES``) and the verify depth the chain needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from cryptography import x509

from gateway.doctor.bundle import Shape, chain_path, cn_of, der_of, ref, self_signed
from gateway.doctor.findings import Finding, Kind
from gateway.tls.engine.verify_codes import VerifyCode, verify_error_text
from gateway.tls.engine.x509 import TrustStore, verify_chain

__all__ = ["DEPTH_SETTINGS", "VERIFY_FIXES", "depth_needed", "trust_unknown", "verify_against"]


DEPTH_SETTINGS: Final = (
    "tls_verify_depth >= {n} on a service (or proxy_ssl_verify_depth globally; default 1), "
    "lua_ssl_verify_depth >= {n} for https health checks (default 1), "
    "verify_depth >= {n} in mtls-auth (unset: no limit)"
)

# Why a verification against --ca failed, by OpenSSL code; {ca}, {top} and {issuer} are filled in.
VERIFY_FIXES: Final[dict[int, str]] = {
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


def trust_unknown(certs: Sequence[x509.Certificate], shape: Shape) -> list[Finding]:
    """Without ``--ca``: what the end of the chain says about what clients need."""
    top = certs[shape.path[-1]]
    if self_signed(top):
        if len(shape.path) > 1:
            return []  # the root is included: _membership said so
        code = VerifyCode.DEPTH_ZERO_SELF_SIGNED_CERT
        return [
            Finding.of(
                Kind.SELF_SIGNED,
                f"{ref(certs, shape.path[0])} is self-signed: clients fail with {int(code)} {verify_error_text(code)} "
                "unless they trust this very certificate.",
                "give it to the clients as their CA (curl --cacert, Kong's ca_certificates), or use a certificate "
                "issued by a CA.",
                code=int(code),
            )
        ]
    issuer = cn_of(top.issuer)
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
            f"the chain ends with {cn_of(top.subject)}, issued by {issuer}, which is not in the bundle, "
            "as it should be: clients have their own roots. Verify against it with --ca.",
        )
    ]


def depth_needed(chain: Sequence[x509.Certificate], store: TrustStore, most: int) -> int | None:
    """The smallest verify depth at which the engine accepts the chain (None if none up to ``most``)."""
    for depth in range(most + 1):
        if verify_chain(chain, store, depth).ok:
            return depth
    return None


def verify_against(
    certs: Sequence[x509.Certificate], shape: Shape, cas: Sequence[x509.Certificate], ca_label: str
) -> list[Finding]:
    """With ``--ca``: verify as a TLS client does, then the depth and what a client with only the root lacks."""
    chain = shape.ordered(certs)
    store = TrustStore(cas)
    order_note = " (in the corrected order, leaf first)" if shape.leaf != 0 else ""
    verdict = verify_chain(chain, store)
    if not verdict.ok:
        top = certs[shape.path[-1]]
        fix = VERIFY_FIXES.get(verdict.code, "see OpenSSL's reason.")
        return [
            Finding.of(
                Kind.VERIFY_FAILED,
                f"the chain does not verify against {ca_label}{order_note}: OpenSSL says {verdict.code}:"
                f"{verify_error_text(verdict.code)}, at depth {verdict.depth}.",
                fix.format(ca=ca_label, top=cn_of(top.subject), issuer=cn_of(top.issuer)),
                code=verdict.code,
                depth=verdict.depth,
            )
        ]
    findings = [
        Finding.of(Kind.VERIFIED, f"the chain verifies against {ca_label}{order_note}, as a TLS client verifies it.")
    ]
    depth = depth_needed(chain, store, len(chain) + len(cas))
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
    built = chain_path(chain[0], [*chain[1:], *cas])
    between = [c for c in built[1:] if not self_signed(c)]
    names = f" ({', '.join(cn_of(c.subject) for c in between)})" if len(between) == depth else ""
    plural = "intermediate" if depth == 1 else "intermediates"
    return Finding.of(
        Kind.DEPTH_NEEDED,
        f"depth needed: {depth}. OpenSSL (and so nginx and Kong) counts the intermediate CAs between the leaf and the "
        "trusted root; the leaf and the root are not counted (depth 0: the leaf is issued by the trusted CA itself). "
        f"This chain has {depth} {plural}{names}. Set {DEPTH_SETTINGS.format(n=depth)}. With less, verification "
        f"fails with 22 {verify_error_text(22)}, as `openssl verify -verify_depth {depth - 1}` does.",
        depth=depth,
    )


def _missing_intermediates(
    certs: Sequence[x509.Certificate],
    shape: Shape,
    chain: Sequence[x509.Certificate],
    cas: Sequence[x509.Certificate],
    ca_label: str,
) -> list[Finding]:
    """An intermediate the chain borrows from the CA file: clients that have only the root fail without it."""
    roots = [c for c in cas if self_signed(c)]
    if len(roots) == len(cas):
        return []
    verdict = verify_chain(chain, TrustStore(roots))
    if verdict.ok or verdict.code not in (2, 20, 21):
        return []
    bundle = {der_of(c) for c in certs}
    borrowed = [c for c in chain_path(chain[0], [*chain[1:], *cas])[1:] if not self_signed(c)]
    borrowed = [c for c in borrowed if der_of(c) not in bundle]
    names = ", ".join(cn_of(c.subject) for c in borrowed) or "an intermediate"
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
