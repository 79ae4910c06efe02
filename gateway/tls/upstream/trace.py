"""Layers 3 and 4's decision records: which client certificate went upstream, and how the upstream was checked.

The *where from* of every value is decided once, when the snapshot's ``UpstreamTlsCompiler`` applies Kong's
precedence, and kept on the compiled profile as ``ProfileOrigins``; the Admin API's ``GET /services/{s}/tls`` reads
that same profile (``profile_json``), so it says exactly what the next new connection uses. The per-connection part
(the SNI sent, the name checked, the verdict, resumption, pooled or new) comes from the connection's ``TlsInfo``, or
from the ``HandshakeFailure`` of a try that failed, and is only read when a record is asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.tls.engine.verify_codes import verify_error_text
from gateway.tls.trace import NONE, Origin, Pairs, TraceHeader, onoff, yesno
from gateway.tls.upstream.connect import HandshakeFailure, peer_names
from gateway.tls.upstream.origins import ProfileOrigins

if TYPE_CHECKING:
    from gateway.tls.upstream.profile import UpstreamTlsProfile

__all__ = ["ProfileOrigins", "UpstreamCertRecord", "UpstreamTrustRecord", "profile_json", "trust_record"]


def _subject(profile: UpstreamTlsProfile) -> str | None:
    cert = profile.client_cert
    return cert.chain[0].subject.rfc4514_string() if cert is not None else None


@dataclass(frozen=True, slots=True)
class UpstreamCertRecord:
    """Layer 3: the client certificate presented upstream and where it came from."""

    profile: UpstreamTlsProfile

    @property
    def header(self) -> TraceHeader:
        return TraceHeader.UPSTREAM_CERT

    def pairs(self) -> Pairs:
        origins = self.profile.origins
        found: list[tuple[str, str]] = [("from", origins.client_cert.label)]
        if origins.client_cert.origin is Origin.NONE:
            return tuple(found)
        found.append(("certificate", origins.client_cert_id or NONE))
        subject = _subject(self.profile)
        if subject is None:  # the entity could not be fetched or applied: nothing was sent (see the error log)
            found.append(("status", "unusable"))
        else:
            found.append(("subject", subject))
        return tuple(found)


@dataclass(frozen=True, slots=True)
class UpstreamTrustRecord:
    """Layer 4: the verification settings and their origins, then what one connection did."""

    profile: UpstreamTlsProfile
    sni: str | None
    host_checked: str | None
    result: str
    resumed: bool | None  # None: no handshake completed
    pooled: bool

    @property
    def header(self) -> TraceHeader:
        return TraceHeader.UPSTREAM_TRUST

    def pairs(self) -> Pairs:
        profile, origins = self.profile, self.profile.origins
        return (
            ("verify", onoff(profile.verify)),
            ("verify_from", origins.verify.label),
            ("trust", origins.trust_label),
            ("trust_from", origins.trust.label),
            ("depth", str(profile.depth)),
            ("depth_from", origins.depth.label),
            ("sni", self.sni or NONE),
            ("host_checked", self.host_checked or NONE),
            ("result", self.result),
            ("resumed", yesno(self.resumed) if self.resumed is not None else NONE),
            ("connection", "pooled" if self.pooled else "new"),
        )


def _failure_result(failure: HandshakeFailure) -> str:
    error = failure.error
    if error.kind == "verify" and error.verify_code is not None:
        return f"{error.verify_code}:{verify_error_text(error.verify_code)}"
    if error.kind == "hostname":
        return "host-mismatch"
    if failure.timeout:
        return "timeout"
    return f"handshake-failed:{failure.reason}"


def trust_record(
    profile: UpstreamTlsProfile,
    upstream_host: str,
    tls: Any = None,
    pooled: bool = False,
    failure: HandshakeFailure | None = None,
) -> UpstreamTrustRecord:
    """Layer 4 for one try: an established connection's ``TlsInfo`` (``pooled``: taken from the keepalive pool),
    or the ``HandshakeFailure`` of a try that failed. SNI and name are ``connect.peer_names``' (what was sent)."""
    sni, check_name = peer_names(upstream_host)
    checked = check_name if profile.verify else None
    if failure is not None:
        return UpstreamTrustRecord(profile, sni, checked, _failure_result(failure), None, False)
    resumed = bool(tls.session_reused) if tls is not None else None
    result = "ok" if profile.verify else "not-checked"
    return UpstreamTrustRecord(profile, getattr(tls, "sni", sni), checked, result, resumed, pooled)


def profile_json(profile: UpstreamTlsProfile) -> dict[str, Any]:
    """The effective profile with the origin of every value (``GET /services/{s}/tls``, ``docs/tls-trace.md``)."""
    origins = profile.origins
    cert = profile.client_cert
    return {
        "client_certificate": {
            "from": origins.client_cert.label,
            "id": origins.client_cert_id,
            "subject": _subject(profile),
            "usable": cert is not None or origins.client_cert.origin is Origin.NONE,
        },
        "verify": {"value": profile.verify, "from": origins.verify.label},
        "trust": {
            "store": origins.trust_label,
            "from": origins.trust.label,
            "ca_certificates": list(origins.trust_ids),
        },
        "depth": {"value": profile.depth, "from": origins.depth.label},
        "session_reuse": profile.session_reuse,
        "notices": [{"level": level, "message": text} for level, text in profile.notices],
    }
