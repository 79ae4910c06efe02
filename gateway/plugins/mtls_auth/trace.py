"""Layer 2's decision record: was a client certificate asked for, and what did mtls-auth make of it.

Two moments, each recorded where it happens:

- the handshake: ``ClientCertRequest`` (``handshake.py``) leaves the ``SniRequest`` it acted on on the TLS session
  (``TlsInfo.client_cert_request``): the SNI pattern that asked (``*`` for a global instance or a route without
  ``snis``) and the CA names it advertised; None means no enabled mtls-auth instance covers that SNI;
- the access phase: the handler's ``Outcome`` carries ``AuthFacts`` (presented or not, the chain, OpenSSL's verify
  code and depth, the CA that anchored it, revocation, the consumer and by which field). Outcomes are cached per
  connection and per chain, so the facts cost nothing per request; names are rendered only when a record is asked
  for.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from gateway.plugins.mtls_auth.names import rfc2253
from gateway.tls.engine.verify_codes import verify_error_text
from gateway.tls.trace import NONE, Pairs, TraceHeader

__all__ = ["AuthFacts", "ClientAuthRecord", "MatchedBy", "client_auth_record", "requested_pairs"]


class MatchedBy(enum.Enum):
    """How mtls-auth found the consumer (Kong's order)."""

    CREDENTIAL_CA = "credential"  # an mtls_auth_credentials row for (name, issuing CA)
    CREDENTIAL_ANY_CA = "credential-any-ca"  # a credential for the name with no CA
    USERNAME = "username"  # consumer_by username
    CUSTOM_ID = "custom_id"  # consumer_by custom_id
    DEFAULT_CONSUMER = "default_consumer"
    ANONYMOUS = "anonymous"
    SKIP_LOOKUP = "skip_consumer_lookup"  # no consumer: X-Client-Cert-DN / -SAN go upstream


@dataclass(frozen=True, slots=True)
class AuthFacts:
    """What the access phase established about one presented chain (or its absence)."""

    presented: bool
    chain: tuple[x509.Certificate, ...] = ()
    plain_http: bool = False
    verify_code: int | None = None  # None: not verified (nothing presented)
    verify_depth: int = 0
    anchor: str | None = None  # the ca_certificates id the chain was verified up to
    revocation: str | None = None  # good / revoked / unknown / skipped; None: not reached
    consumer: Mapping[str, Any] | None = None
    matched_by: MatchedBy | None = None
    result: str = ""  # authenticated / anonymous / 401 <message>

    def with_result(self, **changes: Any) -> AuthFacts:
        values = {name: getattr(self, name) for name in self.__slots__}
        values.update(changes)
        return AuthFacts(**values)

    def pairs(self) -> Pairs:
        if not self.presented:
            found: list[tuple[str, str]] = [("presented", "no")]
            if self.plain_http:
                found.append(("over", "plain-http"))
        else:
            leaf = self.chain[0]
            found = [("presented", "yes"), ("subject", rfc2253(leaf.subject)), ("chain", str(len(self.chain)))]
            if self.verify_code is not None:
                code = self.verify_code
                found.append(("verify", "ok" if code == 0 else f"{code}:{verify_error_text(code)}"))
                if code:
                    found.append(("depth", str(self.verify_depth)))
            found.append(("anchor", self.anchor or NONE))
            found.append(("revocation", self.revocation or "not-checked"))
        consumer = self.consumer
        if consumer is not None:
            found.append(("consumer", str(consumer.get("username") or consumer.get("id"))))
        if self.matched_by is not None:
            found.append(("matched_by", self.matched_by.value))
        if self.result:
            found.append(("result", self.result))
        return tuple(found)


def requested_pairs(request: Any) -> Pairs:
    """The handshake's part: ``requested``, the SNI pattern that asked, and the CA names advertised."""
    if request is None:
        return (("requested", "no"),)
    cas = getattr(request, "ca_certificates", ())
    names = " | ".join(rfc2253(ca.subject) for ca in cas) if cas else NONE
    return (("requested", "yes"), ("requested_by", str(request.pattern)), ("ca_dns", names))


@dataclass(frozen=True, slots=True)
class ClientAuthRecord:
    """Layer 2 for one request: the handshake's request plus, when mtls-auth ran, its verdict."""

    request: Any  # the SniRequest acted on, or None
    tls: bool  # the connection is TLS (a plain-HTTP request has no handshake part)
    facts: AuthFacts | None

    @property
    def header(self) -> TraceHeader:
        return TraceHeader.CLIENT_AUTH

    def pairs(self) -> Pairs:
        head = requested_pairs(self.request) if self.tls else ()
        return head + (self.facts.pairs() if self.facts is not None else ())


def client_auth_record(tls: Any, outcomes: Any) -> ClientAuthRecord | None:
    """The record of a request: ``tls`` is the connection's ``TlsInfo`` (None over plain HTTP), ``outcomes`` the
    connection's plugin cache (mtls-auth's ``Outcome`` per instance). None when nothing applies: a plain-HTTP
    request on a route without mtls-auth."""
    facts = None
    for outcome in (outcomes or {}).values():
        found = getattr(outcome, "facts", None)
        if isinstance(found, AuthFacts):
            facts = found
    if tls is None and facts is None:
        return None
    request = getattr(tls, "client_cert_request", None) if tls is not None else None
    return ClientAuthRecord(request, tls is not None, facts)
