"""OpenSSL's verification results as data: the codes and their texts, the verify callback, the code reported.

The texts in ``VERIFY_ERROR_TEXT`` are a hard-coded copy of OpenSSL 3's ``X509_verify_cert_error_string`` (what
nginx prints in its error log, and what Kong's tests assert); codes are recorded by ``VerifyRecorder``, never
matched from OpenSSL's strings.

Which code is reported. With a callback that records and accepts, OpenSSL reports several errors for one chain,
in this order (checked with pyOpenSSL on this machine):

========================================  ==========================  ========
chain                                     errors seen (code, depth)   reported
========================================  ==========================  ========
root->int1->int2->leaf, depth limit 1     (22, 2) (20, 2)             22
lone leaf from an unknown issuer          (20, 0) (21, 0)             21
leaf + intermediate, root not trusted     (20, 1)                     20
self-signed leaf                          (18, 0)                     18
trusted chain, expired leaf               (10, 0)                     10
========================================  ==========================  ========

nginx reports the *last* error it saw (``SSL_get_verify_result``), which gives 20 for the depth case, while
Kong's documentation shows 22 there. ``reported_verify_error`` reports 22 whenever the depth was exceeded and
the last error otherwise: it agrees with every case Kong documents and names the most useful reason.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Protocol

from OpenSSL import SSL, crypto

__all__ = [
    "RECORD_AND_ACCEPT",
    "RECORD_AND_ENFORCE",
    "VERIFY_ERROR_TEXT",
    "VerifyCode",
    "VerifyErrorSink",
    "VerifyRecorder",
    "reported_verify_error",
    "verify_error_text",
]


class VerifyCode(enum.IntEnum):
    """The OpenSSL ``X509_V_ERR_*`` codes the gateway names (values are OpenSSL's, stable across versions)."""

    OK = 0
    UNSPECIFIED = 1
    UNABLE_TO_GET_ISSUER_CERT = 2
    CERT_SIGNATURE_FAILURE = 7
    CERT_NOT_YET_VALID = 9
    CERT_HAS_EXPIRED = 10
    DEPTH_ZERO_SELF_SIGNED_CERT = 18
    SELF_SIGNED_CERT_IN_CHAIN = 19
    UNABLE_TO_GET_ISSUER_CERT_LOCALLY = 20
    UNABLE_TO_VERIFY_LEAF_SIGNATURE = 21
    CERT_CHAIN_TOO_LONG = 22
    CERT_REVOKED = 23
    NO_ISSUER_PUBLIC_KEY = 24
    PATH_LENGTH_EXCEEDED = 25
    INVALID_PURPOSE = 26
    CERT_UNTRUSTED = 27
    CERT_REJECTED = 28
    HOSTNAME_MISMATCH = 62


# OpenSSL 3.0 X509_verify_cert_error_string(), dumped once on this machine and hard-coded so that log lines and
# error headers carry nginx's exact wording whatever OpenSSL pyOpenSSL happens to bundle.
VERIFY_ERROR_TEXT: dict[int, str] = {
    0: "ok",
    1: "unspecified certificate verification error",
    2: "unable to get issuer certificate",
    3: "unable to get certificate CRL",
    4: "unable to decrypt certificate's signature",
    5: "unable to decrypt CRL's signature",
    6: "unable to decode issuer public key",
    7: "certificate signature failure",
    8: "CRL signature failure",
    9: "certificate is not yet valid",
    10: "certificate has expired",
    11: "CRL is not yet valid",
    12: "CRL has expired",
    13: "format error in certificate's notBefore field",
    14: "format error in certificate's notAfter field",
    15: "format error in CRL's lastUpdate field",
    16: "format error in CRL's nextUpdate field",
    17: "out of memory",
    18: "self-signed certificate",
    19: "self-signed certificate in certificate chain",
    20: "unable to get local issuer certificate",
    21: "unable to verify the first certificate",
    22: "certificate chain too long",
    23: "certificate revoked",
    24: "issuer certificate doesn't have a public key",
    25: "path length constraint exceeded",
    26: "unsuitable certificate purpose",
    27: "certificate not trusted",
    28: "certificate rejected",
    29: "subject issuer mismatch",
    30: "authority and subject key identifier mismatch",
    31: "authority and issuer serial number mismatch",
    32: "key usage does not include certificate signing",
    33: "unable to get CRL issuer certificate",
    34: "unhandled critical extension",
    35: "key usage does not include CRL signing",
    36: "unhandled critical CRL extension",
    37: "invalid non-CA certificate (has CA markings)",
    38: "proxy path length constraint exceeded",
    39: "key usage does not include digital signature",
    40: "proxy certificates not allowed, please set the appropriate flag",
    41: "invalid or inconsistent certificate extension",
    42: "invalid or inconsistent certificate policy extension",
    43: "no explicit policy",
    44: "different CRL scope",
    45: "unsupported extension feature",
    46: "RFC 3779 resource not subset of parent's resources",
    47: "permitted subtree violation",
    48: "excluded subtree violation",
    49: "name constraints minimum and maximum not supported",
    50: "application verification failure",
    51: "unsupported name constraint type",
    52: "unsupported or invalid name constraint syntax",
    53: "unsupported or invalid name syntax",
    54: "CRL path validation error",
    55: "path loop",
    56: "Suite B: certificate version invalid",
    57: "Suite B: invalid public key algorithm",
    58: "Suite B: invalid ECC curve",
    59: "Suite B: invalid signature algorithm",
    60: "Suite B: curve not allowed for this LOS",
    61: "Suite B: cannot sign P-384 with P-256",
    62: "hostname mismatch",
    63: "email address mismatch",
    64: "IP address mismatch",
    65: "no matching DANE TLSA records",
    66: "EE certificate key too weak",
    67: "CA certificate key too weak",
    68: "CA signature digest algorithm too weak",
    69: "invalid certificate verification context",
    70: "issuer certificate lookup error",
    71: "Certificate Transparency required, but no valid SCTs found",
    72: "proxy subject name violation",
    73: "OCSP verification needed",
    74: "OCSP verification failed",
    75: "OCSP unknown cert",
    76: "Cannot find certificate signature algorithm",
    77: "subject signature algorithm and issuer public key algorithm mismatch",
    78: "cert info signature and signature algorithm mismatch",
    79: "invalid CA certificate",
    80: "Path length invalid for non-CA cert",
    81: "Path length given without key usage keyCertSign",
    82: "Key usage keyCertSign invalid for non-CA cert",
    83: "Issuer name empty",
    84: "Subject name empty",
    85: "Missing Authority Key Identifier",
    86: "Missing Subject Key Identifier",
    87: "Empty Subject Alternative Name extension",
    88: "Subject empty and Subject Alt Name extension not critical",
    89: "Basic Constraints of CA cert not marked critical",
    90: "Authority Key Identifier marked critical",
    91: "Subject Key Identifier marked critical",
    92: "CA cert does not include key usage extension",
    93: "Using cert extension requires at least X509v3",
    94: "Certificate public key has explicit ECC parameters",
}


def verify_error_text(code: int) -> str:
    """OpenSSL's wording for a verify code, as nginx logs it: ``(21:unable to verify the first certificate)``."""
    return VERIFY_ERROR_TEXT.get(code, "unknown certificate verification error")


class VerifyErrorSink(Protocol):
    """What a verify callback records into: the ``TlsSession`` set as the connection's app data."""

    verify_errors: list[tuple[int, int]]
    verify_rejected: bool


class VerifyRecorder:
    """A verify callback for ``Context.set_verify`` / ``Connection.set_verify`` that records every error.

    The callback is installed once per *context* (contexts are shared by all connections), so the errors go to
    the object stored with ``Connection.set_app_data`` (the ``TlsSession``), which must have a
    ``verify_errors`` list. ``accept=True`` is nginx's behaviour for upstreams and Kong's for client
    certificates: the handshake always completes and the caller decides afterwards from the recorded errors.
    ``accept=False`` keeps OpenSSL's verdict, so the handshake fails at the first error.
    """

    __slots__ = ("accept",)

    def __init__(self, accept: bool) -> None:
        self.accept = accept

    def __call__(self, conn: SSL.Connection, cert: crypto.X509, errno: int, depth: int, ok: int) -> bool:
        if errno:
            sink = conn.get_app_data()
            try:
                sink.verify_errors.append((errno, depth))
                if not self.accept and not ok:
                    sink.verify_rejected = True
            except AttributeError:
                pass
        return True if self.accept else bool(ok)

    def __repr__(self) -> str:
        return f"VerifyRecorder(accept={self.accept})"


RECORD_AND_ACCEPT = VerifyRecorder(accept=True)
RECORD_AND_ENFORCE = VerifyRecorder(accept=False)


def reported_verify_error(errors: Sequence[tuple[int, int]], depth_exceeded: bool | None = None) -> tuple[int, int]:
    """The (code, depth) to report for the errors OpenSSL raised on one chain; ``(0, 0)`` when there were none.

    Args:
        errors: ``(code, depth)`` pairs in the order OpenSSL reported them.
        depth_exceeded: whether the depth limit was hit; derived from the errors (code 22) when ``None``.

    Returns:
        ``(22, depth)`` when the depth was exceeded, otherwise the last error (see the module docstring).
    """
    if not errors:
        return (0, 0)
    if depth_exceeded is None or depth_exceeded:
        for code, depth in errors:
            if code == VerifyCode.CERT_CHAIN_TOO_LONG:
                return (code, depth)
    return errors[-1]
