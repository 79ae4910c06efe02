"""The mtls-auth plugin (Kong Enterprise): client-certificate authentication (reference section 6).

Theory of operation
-------------------
*Handshake* (``handshake_policy``): Kong's SNI map is built from every enabled instance - a global instance means
``*`` (every handshake, also without SNI), a service instance each of the service's routes' ``snis`` (``*`` for a
route without any), a route instance its ``snis`` (or ``*``) - with the CA certificates to advertise merged per
SNI when ``send_ca_dn`` is on. ``gateway.plugins.mtls_auth.handshake`` turns it into the servername-callback hook.

*Access* (``access``), once per connection: the chain the client sent (leaf + intermediates) is verified against
the instance's ``ca_certificates`` with OpenSSL (``verify_chain``: ``allow_partial_chain``, ``verify_depth``,
validity), then, unless ``revocation_check_mode`` is ``SKIP``, the leaf's revocation status is checked
(``revocation.Checker``; the only step that may wait on the network). Then the consumer is found, in Kong's order,
for the names of the leaf (every SAN value, then the CN): for each name a credential for (name, issuing CA), then
one for (name, any CA); then ``consumer_by`` (username / custom_id) for each name; then ``default_consumer``;
then ``anonymous``; otherwise 401. With ``skip_consumer_lookup`` no consumer is looked up: ``X-Client-Cert-DN``
and ``X-Client-Cert-SAN`` go upstream and the authenticated group (``ctx.authenticated_groups``, read by the acl
plugin) is the CN or the DN by ``authenticated_group_by``; none when that is null, and 401 ``Certificate missing
Common Name`` for a CN group of a certificate without one (Kong's ``authenticate_group_by``).

The result is an ``Outcome`` (the exit to send, or the consumer and the upstream headers to set) computed once and
cached on the connection (``ctx.conn_cache``, keyed by this instance, which lives as long as its snapshot), so
keepalive requests after the first pay a dict lookup; it is also cached per presented chain for ``cache_ttl``
seconds across connections (outcomes that depend on an unreachable revocation source are not).

Failures answer exactly as Kong's ``kong.response.exit`` (no ``request_id``)::

    401 {"message":"No required TLS certificate was sent"}       plain HTTP, or no certificate
    401 {"message":"TLS certificate failed verification"}         bad chain, revoked, no consumer

and the reason goes to the error log as ``[mtls-auth] <reason>``. With ``anonymous`` set, every failure yields the
anonymous consumer instead, and a request another auth plugin already authenticated is left alone.

Upstream headers: the consumer headers are set when present and cleared otherwise, so a client can never send its
own ``X-Consumer-*``, ``X-Anonymous-Consumer``, ``X-Credential-Identifier``, ``X-Client-Cert-DN`` or
``X-Client-Cert-SAN`` through a route this plugin protects.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gateway.entities.index import ConfigIndex, foreign_id
from gateway.observability.tls_metrics import TLS
from gateway.plugins.base import BuildContext, Exit, Plugin, PluginContext, register_handler
from gateway.plugins.mtls_auth.handshake import ClientCertRequest, ClientCertSniMap, SniRequest
from gateway.plugins.mtls_auth.names import common_name, rfc2253, subject_names
from gateway.plugins.mtls_auth.outcome import (
    CLEARED,
    FAILED_EXIT,
    FAILED_MESSAGE,
    H_CERT_DN,
    H_CERT_SAN,
    NAME,
    NO_CERT_EXIT,
    NO_CERT_MESSAGE,
    NO_CN_EXIT,
    NO_CN_MESSAGE,
    UNEXPECTED_EXIT,
    Outcome,
    consumer_headers,
    wire,
)
from gateway.plugins.mtls_auth.revocation import Checker, Status, Verdict, load_crls
from gateway.plugins.mtls_auth.revocation import _TtlCache as TtlCache
from gateway.plugins.mtls_auth.trace import AuthFacts, MatchedBy
from gateway.tls.engine.verify_codes import verify_error_text
from gateway.tls.engine.x509 import PemError, TrustStore, chain_digest, load_pem_chain, verify_chain

__all__ = ["FAILED_MESSAGE", "NAME", "NO_CERT_MESSAGE", "MtlsAuth", "Outcome"]

PRIORITY: Final = 1600


@register_handler
class MtlsAuth(Plugin):
    """One compiled mtls-auth instance (see the module docstring)."""

    NAME = NAME
    PRIORITY = PRIORITY
    NO_CONSUMER = True

    __slots__ = (
        "_anonymous_outcome",
        "_cert_cache",
        "allow_partial_chain",
        "anonymous_ref",
        "ca_by_der",
        "ca_by_subject",
        "cache_ttl",
        "checker",
        "consumer_by",
        "consumers_by_custom_id",
        "consumers_by_username",
        "credentials",
        "default_consumer",
        "group_by",
        "mode",
        "skip_consumer_lookup",
        "trust",
        "verify_depth",
    )

    # ================================================================== compile (configuration flow)
    def __init__(self, row: Mapping[str, Any], build: BuildContext) -> None:
        super().__init__(row)
        self._cert_cache = TtlCache(10000)
        config: Mapping[str, Any] = row.get("config") or {}
        cas: list[x509.Certificate] = []
        self.ca_by_der: dict[bytes, str] = {}
        self.ca_by_subject: dict[bytes, list[tuple[x509.Certificate, str]]] = {}
        for ca_id in config.get("ca_certificates") or ():
            cert = _load_ca(build, str(ca_id))
            if cert is None:
                continue
            cas.append(cert)
            self.ca_by_der[cert.public_bytes(serialization.Encoding.DER)] = str(ca_id)
            self.ca_by_subject.setdefault(cert.subject.public_bytes(), []).append((cert, str(ca_id)))
        self.trust = TrustStore(cas)
        self.allow_partial_chain = bool(config.get("allow_partial_chain"))
        depth = config.get("verify_depth")
        self.verify_depth = int(depth) if isinstance(depth, int) and not isinstance(depth, bool) else None
        self.skip_consumer_lookup = bool(config.get("skip_consumer_lookup"))
        consumer_by = config.get("consumer_by")
        self.consumer_by: tuple[str, ...] = tuple(consumer_by) if consumer_by is not None else ("username", "custom_id")
        self.group_by: str | None = config.get("authenticated_group_by", "CN")  # null: no group (Kong's FTI-5101)
        self.mode: str = config.get("revocation_check_mode") or "IGNORE_CA_ERROR"
        self.cache_ttl = float(config.get("cache_ttl") or 0)
        self.anonymous_ref: str | None = config.get("anonymous") or None
        self.default_consumer = build.consumer(config.get("default_consumer") or None)
        if config.get("default_consumer") and self.default_consumer is None:
            build.error(f"[{NAME}] plugin {self.id}: default_consumer '{config['default_consumer']}' does not exist")
        self._anonymous_outcome = _anonymous(build, self.anonymous_ref)
        self.credentials = _credentials(build)
        self.consumers_by_username = build.consumers_by_username
        self.consumers_by_custom_id = build.consumers_by_custom_id
        crls: list[x509.CertificateRevocationList] = []
        try:
            crls = load_crls(config.get("crls") or [])
        except ValueError as exc:
            build.error(f"[{NAME}] plugin {self.id}: configured CRL ignored: {exc}")
        proxy = None
        if config.get("http_proxy_host") and config.get("http_proxy_port"):
            proxy = (str(config["http_proxy_host"]), int(config["http_proxy_port"]))
        self.checker = Checker(
            timeout_ms=float(config.get("http_timeout") or 30000),
            ttl_ms=float(config.get("cert_cache_ttl") or 0),
            crls=crls,
            proxy=proxy,
        )

    @classmethod
    def compile(cls, row: Mapping[str, Any], build: BuildContext) -> MtlsAuth:
        return cls(row, build)

    @classmethod
    def handshake_policy(cls, instances: list[tuple[Plugin, Mapping[str, Any]]], build: BuildContext) -> Any:
        """Kong's SNI map over every enabled instance, compiled into the servername-callback hook."""
        index = build.certificate_index
        if index is None or not instances:
            return None
        patterns = cls._handshake_patterns(instances, build.index)
        sni_map = ClientCertSniMap(SniRequest(p, tuple(cas.values())) for p, cas in patterns.items())
        if not sni_map:
            return None
        previous = getattr(build.previous, "policies", {}).get(NAME) if build.previous is not None else None
        request = ClientCertRequest.build(
            sni_map,
            index,
            build.index.by_id("certificates"),
            previous=previous if isinstance(previous, ClientCertRequest) else None,
        )
        for error in request.errors:
            build.error(f"[{NAME}] cannot request client certificates with {error}")
        return request

    @staticmethod
    def _handshake_patterns(
        instances: list[tuple[Plugin, Mapping[str, Any]]], index: ConfigIndex
    ) -> dict[str, dict[bytes, x509.Certificate]]:
        """SNI pattern -> the CA certificates to advertise for it (by DER, in order), over every instance."""
        routes, routes_by_service = index.by_id("routes"), index.children("routes", "service")
        patterns: dict[str, dict[bytes, x509.Certificate]] = {}
        for instance, row in instances:
            assert isinstance(instance, MtlsAuth)
            if foreign_id(row.get("consumer")) is not None:
                continue  # never selected (no_consumer), so it must not widen the handshake map either
            send_ca_dn = bool((row.get("config") or {}).get("send_ca_dn"))
            advertised = instance.trust.certificates if send_ca_dn else ()
            for pattern in MtlsAuth._instance_patterns(row, routes, routes_by_service):
                cas = patterns.setdefault(pattern, {})
                for cert in advertised:
                    cas.setdefault(cert.public_bytes(serialization.Encoding.DER), cert)
        return patterns

    @staticmethod
    def _instance_patterns(
        row: Mapping[str, Any],
        routes: Mapping[str, Mapping[str, Any]],
        routes_by_service: Mapping[str, Sequence[Mapping[str, Any]]],
    ) -> list[str]:
        """Kong's scope of one instance as SNI patterns: global ``*``; a route's (or a service's routes') snis."""
        route_id, service_id = foreign_id(row.get("route")), foreign_id(row.get("service"))
        if route_id is not None:
            route = routes.get(route_id)
            scope: Sequence[Mapping[str, Any]] = [route] if route is not None else []
        elif service_id is not None:
            scope = routes_by_service.get(service_id, [])
        else:
            return ["*"]
        patterns: list[str] = []
        for route in scope:
            snis = [s for s in route.get("snis") or () if isinstance(s, str)]
            patterns.extend(snis or ["*"])
        return patterns

    # ================================================================== access (traffic flow)
    def access(self, ctx: PluginContext) -> Exit | asyncio.Future[Exit | None] | None:
        if self.anonymous_ref is not None and ctx.credential is not None:
            return None  # logical OR with an auth plugin that already authenticated the request
        cache = ctx.conn_cache
        if cache is not None:
            outcome = cache.get(self)
            if outcome is not None:
                return outcome.apply(ctx)
        result = self.evaluate(ctx.tls)
        if isinstance(result, Outcome):
            if cache is not None:
                cache[self] = result
            return result.apply(ctx)
        return asyncio.ensure_future(self._finish_later(result, ctx))

    async def _finish_later(self, pending: Any, ctx: PluginContext) -> Exit | None:
        outcome: Outcome = await pending
        if ctx.conn_cache is not None:
            ctx.conn_cache[self] = outcome
        return outcome.apply(ctx)

    def evaluate(self, tls: Any) -> Any:
        """The ``Outcome`` for a connection's TLS state, or a coroutine producing it (revocation fetch)."""
        if tls is None:
            TLS.client_verification("none")
            reason = "client certificate requested over plain HTTP"
            return self._fail(NO_CERT_EXIT, reason, AuthFacts(False, plain_http=True))
        chain: list[x509.Certificate] = tls.peer_chain
        if not chain:
            TLS.client_verification("none")
            return self._fail(NO_CERT_EXIT, "no client certificate was sent", AuthFacts(False))
        key = chain_digest(chain)
        cached = self._cert_cache.get(key)
        if cached is not None:
            return cached
        verdict = verify_chain(chain, self.trust, self.verify_depth, self.allow_partial_chain)
        TLS.client_verification("success" if verdict.ok else "failed")
        facts = AuthFacts(True, tuple(chain), verify_code=verdict.code, verify_depth=verdict.depth)
        if not verdict.ok:
            outcome = self._fail(
                FAILED_EXIT,
                f"client certificate verify error: ({verdict.code}:{verify_error_text(verdict.code)}) "
                f"at depth {verdict.depth}, subject: {rfc2253(chain[0].subject)}",
                facts,
            )
            self._cert_cache.put(key, outcome, self.cache_ttl)
            return outcome
        issuer, ca_id = self._anchor(chain)
        facts = facts.with_result(anchor=ca_id)
        if self.mode == "SKIP" or issuer is None:
            return self._cache(key, self._identify(chain[0], facts, None))
        checker = self.checker
        revocation = checker.configured(chain[0], issuer) or checker.cached(chain[0], issuer)
        if revocation is not None:
            return self._cache(key, self._identify(chain[0], facts, revocation))
        return self._check_then_identify(key, chain[0], issuer, facts)

    async def _check_then_identify(
        self, key: str, leaf: x509.Certificate, issuer: x509.Certificate, facts: AuthFacts
    ) -> Outcome:
        revocation = await self.checker.check(leaf, issuer)
        outcome = self._identify(leaf, facts, revocation)
        if revocation.status is not Status.UNKNOWN:
            self._cache(key, outcome)
        return outcome

    def _cache(self, key: str, outcome: Outcome) -> Outcome:
        self._cert_cache.put(key, outcome, self.cache_ttl)
        return outcome

    def _fail(self, exit: Exit, reason: str, facts: AuthFacts) -> Outcome:
        """A failed verdict: ``exit``, or the anonymous consumer (``facts`` record which, and why)."""
        anonymous = self._anonymous_outcome
        if anonymous is not None:
            consumer = anonymous.consumer
            return anonymous.with_facts(facts.with_result(consumer=consumer, matched_by=MatchedBy.ANONYMOUS))
        if self.anonymous_ref is not None:
            reason = f"anonymous consumer '{self.anonymous_ref}' not found"
            return Outcome(exit=UNEXPECTED_EXIT, reason=reason, facts=facts.with_result(result=f"500 {reason}"))
        message = FAILED_MESSAGE if exit is FAILED_EXIT else NO_CN_MESSAGE if exit is NO_CN_EXIT else NO_CERT_MESSAGE
        return Outcome(exit=exit, reason=reason, facts=facts.with_result(result=f"{exit.status} {message}"))

    def _anchor(self, chain: Sequence[x509.Certificate]) -> tuple[x509.Certificate | None, str | None]:
        """The leaf's issuer certificate and the id of the configured CA the chain was verified up to."""
        leaf = chain[0]
        ordered = [leaf]
        rest = list(chain[1:])
        while True:
            top = ordered[-1]
            if top is not leaf or self.allow_partial_chain:
                ca_id = self.ca_by_der.get(top.public_bytes(serialization.Encoding.DER))
                if ca_id is not None:
                    return (ordered[1] if len(ordered) > 1 else top), ca_id
            for cert, ca_id in self.ca_by_subject.get(top.issuer.public_bytes(), ()):
                if top.issuer == cert.subject:
                    return (ordered[1] if len(ordered) > 1 else cert), ca_id
            nxt = next((c for c in rest if c.subject == top.issuer), None)
            if nxt is None or top.issuer == top.subject:
                return (ordered[1] if len(ordered) > 1 else None), None
            rest.remove(nxt)
            ordered.append(nxt)

    def _identify(self, leaf: x509.Certificate, facts: AuthFacts, revocation: Verdict | None) -> Outcome:
        """Revocation verdict, then the consumer (or the skip_consumer_lookup headers)."""
        notice = ""
        if revocation is not None:
            facts = facts.with_result(revocation=revocation.status.value)
            if revocation.status is Status.REVOKED:
                TLS.client_verification("revoked")
                return self._fail(FAILED_EXIT, f"{revocation.reason}, subject: {rfc2253(leaf.subject)}", facts)
            if revocation.status is Status.UNKNOWN:
                if self.mode == "STRICT":
                    reason = f"revocation status could not be checked (STRICT): {revocation.reason}"
                    return self._fail(FAILED_EXIT, f"{reason}, subject: {rfc2253(leaf.subject)}", facts)
                notice = f"revocation status could not be checked, ignored: {revocation.reason}"
        elif self.mode == "SKIP":
            facts = facts.with_result(revocation="skipped")
        names = subject_names(leaf)
        if self.skip_consumer_lookup:
            dn = rfc2253(leaf.subject)
            group = dn if self.group_by == "DN" else common_name(leaf) if self.group_by == "CN" else None
            if group is None and self.group_by == "CN":
                return self._fail(NO_CN_EXIT, f"{NO_CN_MESSAGE}, subject: {dn}", facts)
            headers = (*CLEARED[:5], (H_CERT_DN, wire(dn)), (H_CERT_SAN, wire(",".join(names))))
            groups = (group,) if group is not None else None
            facts = facts.with_result(matched_by=MatchedBy.SKIP_LOOKUP, result="authenticated")
            return Outcome(groups=groups, headers=headers, reason=notice, level="notice", facts=facts)
        consumer, credential, by = self._match(names, facts.anchor)
        if consumer is None:
            reason = f"certificate is valid but consumer matching failed, names: {', '.join(names)}"
            return self._fail(FAILED_EXIT, reason, facts)
        return Outcome(
            consumer=consumer,
            credential=credential,
            headers=consumer_headers(consumer, anonymous=False),
            reason=notice,
            level="notice",
            facts=facts.with_result(consumer=consumer, matched_by=by, result="authenticated"),
        )

    def _match(
        self, names: Sequence[str], ca_id: str | None
    ) -> tuple[Mapping[str, Any] | None, Mapping[str, Any] | None, MatchedBy | None]:
        """Kong's consumer lookup for the leaf's names: (consumer, credential, how it was found)."""
        credentials = self.credentials
        for name in names:
            found = credentials.get((name, ca_id)) if ca_id is not None else None
            by = MatchedBy.CREDENTIAL_CA
            if found is None:
                found, by = credentials.get((name, None)), MatchedBy.CREDENTIAL_ANY_CA
            if found is not None:
                return found[0], found[1], by
        for name in names:
            for field in self.consumer_by:
                index = self.consumers_by_username if field == "username" else self.consumers_by_custom_id
                consumer = index.get(name)
                if consumer is not None:
                    return consumer, {"consumer": {"id": consumer["id"]}}, MatchedBy(field)
        if self.default_consumer is not None:
            credential = {"consumer": {"id": self.default_consumer["id"]}}
            return self.default_consumer, credential, MatchedBy.DEFAULT_CONSUMER
        return None, None, None


def _load_ca(build: BuildContext, ca_id: str) -> x509.Certificate | None:
    def load() -> x509.Certificate | None:
        row = build.ca_certificates.get(ca_id)
        if row is None:
            build.error(f"[{NAME}] CA Certificate '{ca_id}' does not exist")
            return None
        try:
            return load_pem_chain(row.get("cert") or "")[0]
        except (PemError, IndexError, ValueError) as exc:
            build.error(f"[{NAME}] CA Certificate '{ca_id}' cannot be loaded: {exc}")
            return None

    found: x509.Certificate | None = build.memo(("mtls-auth:ca", ca_id), load)
    return found


def _credentials(build: BuildContext) -> dict[tuple[str, str | None], tuple[Mapping[str, Any], Mapping[str, Any]]]:
    """(subject_name, ca_certificate id or None) -> (consumer, credential), once per snapshot."""

    def index() -> dict[tuple[str, str | None], tuple[Mapping[str, Any], Mapping[str, Any]]]:
        found: dict[tuple[str, str | None], tuple[Mapping[str, Any], Mapping[str, Any]]] = {}
        for row in build.config.get("mtls_auth_credentials", []):
            consumer = build.consumers.get(foreign_id(row.get("consumer")) or "")
            subject = row.get("subject_name")
            if consumer is None or not isinstance(subject, str):
                continue
            found.setdefault((subject, foreign_id(row.get("ca_certificate"))), (consumer, row))
        return found

    found: dict[tuple[str, str | None], tuple[Mapping[str, Any], Mapping[str, Any]]] = build.memo(
        "mtls-auth:credentials", index
    )
    return found


def _anonymous(build: BuildContext, ref: str | None) -> Outcome | None:
    consumer = build.consumer(ref)
    if consumer is None:
        if ref:
            build.error(f"[{NAME}] anonymous consumer '{ref}' does not exist")
        return None
    return Outcome(consumer=consumer, credential=None, headers=consumer_headers(consumer, anonymous=True))
