"""``gateway doctor upstream HOST:PORT``: the handshake the gateway would make to an upstream, explained.

The doctor does not reimplement the gateway's upstream TLS: it asks the gateway's own compiler
(``gateway.tls.upstream.profile.UpstreamTlsCompiler``) for the profile of a service with ``tls_verify = true`` and
the options as that service's fields (``--ca`` as its ``ca_certificates``, ``--depth`` as its ``tls_verify_depth``,
``--cert``/``--key`` as its ``client_certificate``; anything not given falls back to the settings, ``-c CONF`` and
``KONG_*``, exactly as for a service), then connects with the gateway's own connector
(``gateway.tls.upstream.connect.open_upstream_tls``): the same ``SSL.Context`` construction, the same
``RECORD_AND_ACCEPT`` verify callback and depth, the same ``check_host`` and nginx's wording for a failure.

Two connections are made, because the gateway's verdict ends a failing handshake before anything can be looked at:

1. **look**: the same context with ``tls_verify = false``: the handshake completes, OpenSSL's recorded errors and
   the chain the server sent are read, and one ``GET /`` shows what the upstream answers (a server that requires
   a client certificate refuses here);
2. **verdict**: the profile with ``tls_verify = true``, as a proxied request opens it: its failure text is the very
   ``reason`` the gateway writes to its error log (``<reason> while SSL handshaking to upstream, ...``) and
   answers with a 502.

The findings (``gateway.doctor.findings``) then say the chain, the verification step by step, the host check, the
log line and, for a failure, the cause and fix in plain words (``FIXES``).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from cryptography import x509

from gateway.doctor.bundle import chain_path, cn_of, self_signed
from gateway.doctor.findings import Finding, Kind
from gateway.doctor.reading import parse_certificates, read_file
from gateway.doctor.trust import depth_needed
from gateway.settings import ConfigError, Settings, load_settings
from gateway.tls.engine.hostnames import check_host
from gateway.tls.engine.verify_codes import VerifyCode, verify_error_text
from gateway.tls.engine.x509 import TrustStore
from gateway.tls.upstream.connect import HandshakeFailure, open_upstream_tls, peer_names
from gateway.tls.upstream.globals import UpstreamTlsGlobals
from gateway.tls.upstream.profile import ContextCache, UpstreamTlsCompiler, UpstreamTlsProfile

__all__ = ["FIXES", "Compiled", "UpstreamQuery", "diagnose_upstream", "examine", "parse_target"]

CA_ID: Final = "doctor-ca"
CERT_ID: Final = "doctor-client-certificate"
NO_CERT_SENT: Final = "No required SSL certificate was sent"

# The cause and the fix of a refused upstream, by OpenSSL code; {trust}, {top}, {issuer}, {depth}, {needed} filled in.
FIXES: Final[dict[int, str]] = {
    VerifyCode.UNABLE_TO_GET_ISSUER_CERT_LOCALLY: (
        "the trust store ({trust}) holds no CA that issued {top} (its issuer is {issuer}). Add that root as a CA "
        "certificate (POST /ca_certificates) and list it in the service's ca_certificates, or point "
        "proxy_ssl_trusted_certificate at it; try it first with --ca ROOT.pem."
    ),
    VerifyCode.UNABLE_TO_VERIFY_LEAF_SIGNATURE: (
        "the server sent its leaf alone and the trust store ({trust}) lacks the leaf's issuer, {issuer}. Make the "
        "upstream send its intermediate after the leaf (nginx: ssl_certificate with leaf + intermediate)."
    ),
    VerifyCode.CERT_CHAIN_TOO_LONG: (
        "the chain needs depth {needed} (intermediates between the leaf and the root; OpenSSL counts neither), "
        "more than the depth {depth}. Set tls_verify_depth = {needed} on the service (or proxy_ssl_verify_depth "
        "globally)."
    ),
    VerifyCode.DEPTH_ZERO_SELF_SIGNED_CERT: (
        "the upstream's certificate is self-signed and the trust store ({trust}) does not hold it. Add this very "
        "certificate as a CA certificate for the service, or give the upstream a certificate issued by a CA."
    ),
    VerifyCode.SELF_SIGNED_CERT_IN_CHAIN: (
        "the server sends a root ({top}) that the trust store ({trust}) does not hold. Add that root to the "
        "service's ca_certificates."
    ),
    VerifyCode.UNABLE_TO_GET_ISSUER_CERT: (
        "the trust store ({trust}) holds an intermediate but not the root above it: OpenSSL (so nginx and Kong) "
        "needs the self-signed root as the anchor. Add the root."
    ),
    VerifyCode.CERT_HAS_EXPIRED: "a certificate of the chain has expired (see its dates above): renew it.",
    VerifyCode.CERT_NOT_YET_VALID: "a certificate of the chain is not valid yet: check its dates and the clocks.",
}


@dataclass(frozen=True, slots=True)
class UpstreamQuery:
    """What ``gateway doctor upstream`` was asked: the target and the service fields it stands for."""

    host: str
    port: int
    sni: str | None = None
    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    depth: int | None = None
    conf: str | None = None
    timeout: float = 10.0

    @property
    def upstream_host(self) -> str:
        """What the gateway derives the SNI and the checked name from (``$upstream_host``)."""
        return self.sni or self.host


def parse_target(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[v6]:PORT`` (the port is required: there is no default for an upstream).

    Raises:
        ValueError: no port, or not a number in 1-65535.
    """
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


# ----------------------------------------------------------------------------------------------------------
# The profile, from the gateway's compiler
# ----------------------------------------------------------------------------------------------------------


def _file_text(path: str, what: str) -> tuple[str, list[x509.Certificate]] | Finding:
    """A file's PEM text and its certificates (none for a key file), or why it cannot be used."""
    data = read_file(path, what)
    if isinstance(data, Finding):
        return data
    certs: list[x509.Certificate] = []
    if what != "the key file":
        parsed = parse_certificates(data, path)
        if isinstance(parsed, Finding):
            return parsed
        certs = parsed
    return data.decode("utf-8", "replace"), certs


@dataclass
class _Inputs:
    """The service row and the entities the compiler reads, made of the options."""

    row: dict[str, Any]
    config: dict[str, list[dict[str, Any]]]
    cas: list[x509.Certificate]
    problems: list[Finding]


def _inputs(query: UpstreamQuery) -> _Inputs:
    row: dict[str, Any] = {"protocol": "https", "host": query.host, "port": query.port, "tls_verify": True}
    found = _Inputs(row, {"ca_certificates": [], "certificates": [], "upstreams": []}, [], [])
    if query.depth is not None:
        row["tls_verify_depth"] = query.depth
    if query.ca is not None:
        ca = _file_text(query.ca, "the CA file")
        if isinstance(ca, Finding):
            found.problems.append(ca)
        else:
            found.config["ca_certificates"].append({"id": CA_ID, "cert": ca[0]})
            found.cas = ca[1]
            row["ca_certificates"] = [CA_ID]
    if query.cert is not None:
        cert = _file_text(query.cert, "the certificate file")
        key = _file_text(query.key, "the key file") if query.key else None
        found.problems += [f for f in (cert, key) if isinstance(f, Finding)]
        if isinstance(cert, tuple) and isinstance(key, tuple):
            found.config["certificates"].append({"id": CERT_ID, "cert": cert[0], "key": key[0]})
            row["client_certificate"] = {"id": CERT_ID}
    return found


def _trust_words(query: UpstreamQuery, settings: Settings) -> str:
    if query.ca is not None:
        return f"{query.ca}, as the service's ca_certificates"
    if settings.proxy_ssl_trusted_certificate:
        return f"proxy_ssl_trusted_certificate = {settings.proxy_ssl_trusted_certificate}"
    return "empty: no ca_certificates and no proxy_ssl_trusted_certificate (Kong's default)"


def _trust_store(inputs: _Inputs, settings: Settings) -> TrustStore:
    """The store the profile verifies against, for the depth arithmetic (the handshake itself uses the context)."""
    return TrustStore(inputs.cas) if inputs.cas else UpstreamTlsGlobals(settings).proxy_trust


def _profile_finding(query: UpstreamQuery, settings: Settings, profile: UpstreamTlsProfile) -> Finding:
    depth_from = "--depth, as the service's tls_verify_depth" if query.depth is not None else "proxy_ssl_verify_depth"
    sni, check_name = peer_names(query.upstream_host)
    cert = profile.client_cert
    origin = {"service": "--cert, as the service's client_certificate", "global": "client_ssl_cert, the global one"}
    presented = f"{cn_of(cert.chain[0].subject)} (from {origin.get(cert.source, cert.source)})" if cert else "none"
    return Finding.of(
        Kind.UPSTREAM_PROFILE,
        f"as a service with tls_verify = true: depth {profile.depth} (from {depth_from}); trust store "
        f"{_trust_words(query, settings)}; SNI sent {sni or '(none: an IP address)'}; name checked {check_name}; "
        f"client certificate {presented}.",
        depth=profile.depth,
        sni=sni,
    )


# ----------------------------------------------------------------------------------------------------------
# The two connections
# ----------------------------------------------------------------------------------------------------------


class _Reader(asyncio.Protocol):
    """Collects the upstream's answer to one ``GET /`` until the head is complete or the connection ends."""

    def __init__(self) -> None:
        self.data = b""
        self.error: str | None = None
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.data += data
        if b"\r\n\r\n" in self.data and not self.done.done():
            self.done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:
            self.error = str(exc) or type(exc).__name__
        if not self.done.done():
            self.done.set_result(None)


@dataclass
class _Look:
    chain: list[x509.Certificate]
    errors: tuple[tuple[int, int], ...]
    version: str | None
    cipher: str | None
    answer: bytes
    answer_error: str | None


async def _look(query: UpstreamQuery, ip: str, profile: UpstreamTlsProfile) -> _Look | HandshakeFailure:
    loop = asyncio.get_running_loop()
    try:
        transport, app = await open_upstream_tls(
            loop, _Reader, ip, query.port, profile, query.upstream_host, query.timeout
        )
    except HandshakeFailure as failure:
        return failure
    info = transport.get_extra_info("tls")
    assert isinstance(app, _Reader)
    transport.write(
        f"GET / HTTP/1.1\r\nHost: {query.upstream_host}\r\nUser-Agent: gateway-doctor\r\n"
        "Connection: close\r\n\r\n".encode()
    )
    try:
        async with asyncio.timeout(query.timeout):
            await app.done
    except TimeoutError:
        app.error = "no answer in time"
    transport.abort()
    return _Look(list(info.peer_chain), tuple(info.verify_errors), info.version, info.cipher, app.data, app.error)


async def _verdict(query: UpstreamQuery, ip: str, profile: UpstreamTlsProfile) -> HandshakeFailure | None:
    loop = asyncio.get_running_loop()
    try:
        transport, _ = await open_upstream_tls(
            loop, asyncio.Protocol, ip, query.port, profile, query.upstream_host, query.timeout
        )
    except HandshakeFailure as failure:
        return failure
    transport.abort()
    return None


async def _reach(query: UpstreamQuery, profile: UpstreamTlsProfile) -> tuple[str, _Look | HandshakeFailure]:
    """The first address of ``query.host`` that accepts a connection, and what the look connection saw there.

    Raises:
        OSError: the name does not resolve, or no address accepts a connection (the last address's error).
    """
    infos = await asyncio.get_running_loop().getaddrinfo(query.host, query.port, type=socket.SOCK_STREAM)
    error: OSError = OSError(f"{query.host} has no address")
    for info in infos:
        ip = str(info[4][0])
        try:
            return ip, await _look(query, ip, profile)
        except OSError as exc:
            error = exc
    raise error


# ----------------------------------------------------------------------------------------------------------
# Words
# ----------------------------------------------------------------------------------------------------------


def _chain_findings(chain: Sequence[x509.Certificate]) -> list[Finding]:
    if not chain:
        return [Finding.of(Kind.SERVER_CHAIN, "the server sent no certificate.")]
    return [
        Finding.of(
            Kind.SERVER_CHAIN,
            f"the server sent, at depth {i}: {cn_of(cert.subject)}, issued by {cn_of(cert.issuer)}"
            f"{' (self-signed)' if self_signed(cert) else ''}.",
            depth=i,
            dn=cert.subject.rfc4514_string(),
        )
        for i, cert in enumerate(chain)
    ]


def _steps(look: _Look, store: TrustStore) -> list[Finding]:
    """OpenSSL's walk, one step per depth: the certificate there and the errors its verify callback recorded."""
    built = chain_path(look.chain[0], [*look.chain[1:], *store.certificates]) if look.chain else []
    deepest = max([len(built) - 1, *(d for _, d in look.errors)], default=-1)
    steps = []
    for depth in range(deepest + 1):
        if depth < len(built):
            cert = built[depth]
            where = "sent by the server" if depth < len(look.chain) else "from the trust store"
            who = f"{cn_of(cert.subject)} ({where})"
        else:
            who = "(no certificate found)"
        codes = [code for code, at in look.errors if at == depth]
        said = "; ".join(f"{code}:{verify_error_text(code)}" for code in codes) or "ok"
        steps.append(
            Finding.of(Kind.VERIFY_STEP, f"verify step, depth {depth}: {who}: {said}.", depth=depth, codes=codes)
        )
    return steps


def _host_finding(look: _Look, check_name: str) -> Finding:
    if look.chain and check_host(look.chain[0], check_name):
        return Finding.of(Kind.NAME_MATCH, f"host check: the certificate covers {check_name} (X509_check_host).")
    after = " nginx checks the name after the chain: once the chain verifies, this fails next." if look.errors else ""
    return Finding.of(
        Kind.NAME_MISMATCH,
        f"host check: the certificate does not cover {check_name} (X509_check_host, as nginx checks it).{after}",
        name=check_name,
    )


def _answer_finding(look: _Look) -> Finding:
    head = look.answer.split(b"\r\n", 1)[0].decode("latin-1")
    if NO_CERT_SENT.encode() in look.answer or (look.answer_error and "certificate required" in look.answer_error):
        return Finding.of(
            Kind.CLIENT_CERT_REQUIRED,
            f"the upstream requires a client certificate and got none it accepts ({head or look.answer_error}).",
            "give the service a client_certificate (or its Upstream entity, or client_ssl = on with "
            "client_ssl_cert); try it first with --cert and --key.",
        )
    if head:
        return Finding.of(Kind.UPSTREAM_ANSWER, f"GET / over this connection: the upstream answered {head}.")
    return Finding.of(
        Kind.UPSTREAM_NO_ANSWER,
        f"GET / over this connection: no answer ({look.answer_error or 'the upstream closed the connection'}); the "
        "gateway would answer 502.",
        "see the upstream's own log. A TLS 1.3 server that refuses a client certificate, or its absence, ends the "
        "connection right after the handshake (its alert can be lost in a reset): try --cert and --key.",
    )


def _fix(failure: HandshakeFailure, look: _Look | None, trust: str, depth: int, needed: int | None) -> str:
    error = failure.error
    if error.kind == "hostname":
        return (
            "connect with a name the certificate covers (the service's host, an Upstream's host_header, or --sni "
            "here), or reissue the certificate with this name."
        )
    if error.kind != "verify":
        return (
            "see OpenSSL's reason; a server that requires a client certificate may end the handshake without one "
            "(try --cert and --key)."
        )
    top = look.chain[-1] if look is not None and look.chain else None
    return FIXES.get(error.verify_code or -1, "see OpenSSL's reason above.").format(
        trust=trust,
        top=cn_of(top.subject) if top is not None else "the top certificate",
        issuer=cn_of(top.issuer) if top is not None else "its issuer",
        depth=depth,
        needed=needed if needed is not None else "more",
    )


def _refused(
    failure: HandshakeFailure, look: _Look | None, store: TrustStore, where: str, depth: int, trust: str
) -> Finding:
    """The 502, the error-log line the gateway writes for it, the cause and the fix."""
    needed = depth_needed(look.chain, store, len(look.chain) + 8) if look is not None and look.chain else None
    line = f'{failure.reason} while SSL handshaking to upstream, upstream: "https://{where}/"'
    return Finding.of(
        Kind.UPSTREAM_REFUSED,
        f"the gateway refuses this upstream and answers 502. Kong's error.log: [{failure.level}] {line}",
        _fix(failure, look, trust, depth, needed),
        reason=failure.reason,
        code=failure.error.verify_code,
        depth=failure.error.verify_depth,
        needed=needed,
    )


# ----------------------------------------------------------------------------------------------------------
# Entry point
# ----------------------------------------------------------------------------------------------------------


def _connection_findings(look: _Look, store: TrustStore, check_name: str) -> list[Finding]:
    findings = [Finding.of(Kind.UPSTREAM_TLS, f"handshake: {look.version}, {look.cipher}.")]
    findings += _chain_findings(look.chain)
    findings += _steps(look, store)
    findings.append(_host_finding(look, check_name))
    return findings


@dataclass(frozen=True, slots=True)
class Compiled:
    """The profiles the two connections use and what the words say of the trust store.

    Attributes:
        profile: the profile a proxied request uses (the verdict connection).
        look_profile: the same profile with ``tls_verify = false`` (the look connection).
        store: the trust store behind ``profile``, for the walk and the depth arithmetic.
        trust: the trust store in words (``ca_certificates:<id>``, a file...).
    """

    profile: UpstreamTlsProfile
    look_profile: UpstreamTlsProfile
    store: TrustStore
    trust: str


async def examine(query: UpstreamQuery, compiled: Compiled) -> list[Finding]:
    """The two connections with a compiled profile, and their findings: the chain, each verification step, the
    host check, the verdict with its error-log line, cause and fix, and what the upstream answered.

    ``query`` gives the address (``host``, ``port``) and the name SNI and the host check derive from
    (``upstream_host``); ``gateway doctor service`` calls this with the profile of a running gateway's service.
    """
    profile, store = compiled.profile, compiled.store
    try:
        ip, look = await _reach(query, compiled.look_profile)
        verdict = await _verdict(query, ip, profile)
    except OSError as exc:
        return [Finding.of(Kind.CONNECT_FAILED, f"cannot connect to {query.host}:{query.port}: {exc}.")]
    findings: list[Finding] = []
    seen = look if isinstance(look, _Look) else None
    if seen is not None:
        findings += _connection_findings(seen, store, peer_names(query.upstream_host)[1])
    if verdict is None:
        findings.append(
            Finding.of(
                Kind.UPSTREAM_OK,
                "the gateway accepts this upstream with these settings: the handshake and its checks pass.",
            )
        )
    else:
        where = f"[{ip}]:{query.port}" if ":" in ip else f"{ip}:{query.port}"
        findings.append(_refused(verdict, seen, store, where, profile.depth, compiled.trust))
    if seen is not None and (verdict is None or verdict.error.kind not in ("verify", "hostname")):
        findings.append(_answer_finding(seen))
    return findings


async def _diagnose(query: UpstreamQuery, settings: Settings) -> list[Finding]:
    inputs = _inputs(query)
    if inputs.problems:
        return inputs.problems
    compiler = UpstreamTlsCompiler(settings, inputs.config, contexts=ContextCache())
    profile, look_profile = compiler.profile(inputs.row), compiler.profile({**inputs.row, "tls_verify": False})
    assert profile is not None and look_profile is not None
    findings = [_profile_finding(query, settings, profile)]
    findings += [Finding.of(Kind.UPSTREAM_NOTICE, f"[{level}] {text}") for level, text in profile.notices]
    compiled = Compiled(profile, look_profile, _trust_store(inputs, settings), _trust_words(query, settings))
    return findings + await examine(query, compiled)


def diagnose_upstream(query: UpstreamQuery) -> list[Finding]:
    """``gateway doctor upstream``: the findings (settings from ``query.conf`` and ``KONG_*``, as ``start``)."""
    try:
        settings = load_settings(query.conf)
    except ConfigError as exc:
        return [Finding.of(Kind.START_REFUSES, f"the settings do not load: {exc}")]
    try:
        return asyncio.run(_diagnose(query, settings))
    except ConfigError as exc:  # a global client_ssl_cert / proxy_ssl_trusted_certificate that start refuses too
        return [Finding.of(Kind.START_REFUSES, f"gateway start refuses the upstream TLS settings: {exc}")]
