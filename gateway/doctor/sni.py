"""``gateway doctor sni NAME``: which certificate the running gateway serves for NAME, and why.

The answer comes from the gateway itself: ``GET /tls/served?sni=NAME`` (our Admin API extension) calls the proxy
snapshot's own ``CertificateIndex.select`` (the SNI callback's call) and mtls-auth's handshake map, so the rule,
the certificate and the client-certificate request are the ones a handshake gets, never a second implementation of
Kong's SNI order. The doctor adds words (``RULE_WORDS``), the names the certificate covers (its PEM from
``GET /certificates/{id}``), its expiry, and whether the leaf covers NAME.

``--connect`` also makes a real handshake with that SNI to the proxy's TLS listener (``--proxy HOST:PORT``, or the
first ``ssl`` entry of the running gateway's ``proxy_listen`` from ``GET /``) and compares the leaf served with the
certificate the Admin API named (its DER against the entity's ``cert`` and ``cert_alt``; for the two defaults, the
subject and the key type), and the CA names of the CertificateRequest with ``ca_dns``. The handshake sends no client
certificate and does not verify the proxy's certificate (it is looked at, not trusted). Whether a CertificateRequest
was sent without CA names cannot be seen from the client's side with OpenSSL's API, so only the names are compared.
"""

from __future__ import annotations

import datetime
import select
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from cryptography import x509
from cryptography.x509.oid import NameOID
from OpenSSL import SSL

from gateway.doctor.admin import UNREACHABLE_FIX, AdminApi, AdminError, admin_url
from gateway.doctor.bundle import date_of, days_of, der_of
from gateway.doctor.findings import Finding, Kind
from gateway.doctor.upstream import parse_target
from gateway.plugins.mtls_auth.names import rfc2253
from gateway.settings import ConfigError, load_settings
from gateway.tls.engine.hostnames import check_host, is_ip_literal
from gateway.tls.engine.x509 import PemError, load_pem_chain
from gateway.tls.served.trace import key_type, not_after

__all__ = ["RULE_WORDS", "SniQuery", "diagnose_sni"]

EXPIRY_WARNING_DAYS: Final = 30

#: why a rule chose the certificate, in Kong's order of the steps ({entity}: the SNI entity that matched)
RULE_WORDS: Final[dict[str, str]] = {
    "exact": "exact: the SNI entity {entity} is this very name (Kong's first step)",
    "wildcard-prefix": "wildcard-prefix: no SNI entity has this exact name; {entity} (a leading *) covers it "
    "(Kong's second step)",
    "wildcard-suffix": "wildcard-suffix: no exact or *.prefix SNI entity matches; {entity} (a trailing *) covers it "
    "(Kong's third step)",
    "catch-all": "catch-all: no exact or wildcard SNI entity matches; the SNI entity named * serves every other name "
    "(Kong's fourth step)",
    "ssl_cert": "ssl_cert: no SNI entity matches (and none is named *): the proxy listener's default, from the "
    "ssl_cert setting",
    "generated-default": "generated-default: no SNI entity matches and ssl_cert is not set: the pair Kong generates "
    "under <prefix>/ssl/ (browsers and curl refuse it)",
}


@dataclass(frozen=True, slots=True)
class SniQuery:
    """What ``gateway doctor sni`` was asked. ``name`` None: a client that sends no SNI."""

    name: str | None
    admin: str | None = None
    conf: str | None = None
    connect: bool = False
    proxy: str | None = None
    timeout: float = 10.0


def _served_finding(name: str | None, cert: Mapping[str, Any]) -> Finding:
    said = RULE_WORDS.get(cert["rule"], cert["rule"]).format(entity=cert.get("sni_entity"))
    which = f"the certificate {cert['id']}" if cert.get("id") else "the default certificate"
    asked = f"a handshake with the SNI {name}" if name else "a handshake without SNI"
    keys = " and ".join(cert.get("key_types") or ()) or "no"
    return Finding.of(
        Kind.SERVED,
        f"{asked} is served {which} ({cert.get('subject')}; {keys} key), by the rule {said}.",
        rule=cert["rule"],
        certificate=cert.get("id"),
        sni_entity=cert.get("sni_entity"),
    )


def _leaves(row: Mapping[str, Any] | None) -> list[x509.Certificate]:
    """The leaf of the entity's ``cert`` and ``cert_alt`` (an unreadable PEM is skipped: ``error`` says why)."""
    leaves = []
    for field in ("cert", "cert_alt"):
        pem = (row or {}).get(field)
        if pem:
            try:
                leaves.append(load_pem_chain(pem)[0])
            except PemError:
                continue
    return leaves


def _names(leaf: x509.Certificate) -> list[str]:
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [f"DNS:{d}" for d in san.get_values_for_type(x509.DNSName)] + [
        f"IP:{ip}" for ip in san.get_values_for_type(x509.IPAddress)
    ]


def _leaf_findings(name: str | None, leaf: x509.Certificate, now: datetime.datetime) -> list[Finding]:
    """Names covered, whether they cover ``name``, and the dates."""
    names = _names(leaf)
    findings = [
        Finding.of(
            Kind.NAMES,
            f"names covered: {', '.join(names) if names else 'none in subjectAltName (clients fall back to the CN)'}.",
            names=names,
        )
    ]
    if name:
        if check_host(leaf, name):
            findings.append(Finding.of(Kind.NAME_MATCH, f"the leaf covers {name} (X509_check_host)."))
        else:
            findings.append(
                Finding.of(
                    Kind.NAME_MISMATCH,
                    f"the leaf does not cover {name}: a client that checks the name (curl, browsers) refuses it.",
                    f"add an SNI entity {name} (or a wildcard) on a certificate that covers it, or reissue this one.",
                    name=name,
                )
            )
    ends = leaf.not_valid_after_utc
    if now > ends:
        findings.append(
            Finding.of(
                Kind.EXPIRED,
                f"it expired on {date_of(ends)} ({days_of(now - ends)} ago): Kong serves it anyway; clients refuse it "
                "with 10 certificate has expired.",
                "PATCH the certificate with a renewed cert and key.",
            )
        )
    elif ends - now < datetime.timedelta(days=EXPIRY_WARNING_DAYS):
        findings.append(
            Finding.of(Kind.EXPIRING_SOON, f"it expires on {date_of(ends)}, in {days_of(ends - now)}.", "renew it.")
        )
    else:
        findings.append(Finding.of(Kind.VALIDITY_OK, f"valid until {date_of(ends)} ({days_of(ends - now)} left)."))
    return findings


def _request_finding(request: Mapping[str, Any]) -> Finding:
    if not request.get("requested"):
        return Finding.of(
            Kind.CLIENT_CERT_REQUEST,
            "no client certificate is requested: no enabled mtls-auth instance covers this SNI.",
            requested=False,
        )
    dns = request.get("ca_dns") or []
    names = f"with the CA names {' | '.join(dns)}" if dns else "without CA names (send_ca_dn is off)"
    return Finding.of(
        Kind.CLIENT_CERT_REQUEST,
        f"a client certificate is requested, by mtls-auth for {request.get('requested_by')}, {names}.",
        requested=True,
        requested_by=request.get("requested_by"),
        ca_dns=dns,
    )


# ----------------------------------------------------------------------------------------------------------
# --connect
# ----------------------------------------------------------------------------------------------------------


def _proxy_address(api: AdminApi, given: str | None) -> tuple[str, int]:
    """``--proxy``, else the first ``ssl`` entry of the running gateway's ``proxy_listen`` (``GET /``)."""
    if given:
        return parse_target(given)
    node = api.get("/") or {}
    for entry in (node.get("configuration") or {}).get("proxy_listen") or ():
        words = str(entry).split()
        if "ssl" in words[1:]:
            host, port = parse_target(words[0])
            return {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host), port
    raise AdminError(f"the gateway at {api.base} has no ssl proxy_listen entry (GET /): give --proxy HOST:PORT")


#: OpenSSL's short names of the usual DN attributes, to render a received CA name as the gateway renders its own
_SHORT_NAMES: Final = {
    b"CN": NameOID.COMMON_NAME,
    b"O": NameOID.ORGANIZATION_NAME,
    b"OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    b"C": NameOID.COUNTRY_NAME,
    b"ST": NameOID.STATE_OR_PROVINCE_NAME,
    b"L": NameOID.LOCALITY_NAME,
    b"DC": NameOID.DOMAIN_COMPONENT,
    b"emailAddress": NameOID.EMAIL_ADDRESS,
    b"serialNumber": NameOID.SERIAL_NUMBER,
}


def _ca_name(components: Sequence[tuple[bytes, bytes]]) -> str:
    """A CertificateRequest's CA name in RFC 2253, as ``ca_dns`` renders it (unknown attributes as OpenSSL names
    them)."""
    attrs = []
    for short, value in components:
        oid = _SHORT_NAMES.get(short)
        text = value.decode("utf-8", "replace")
        attrs.append(x509.NameAttribute(oid, text) if oid is not None else None)
        if oid is None:
            return ",".join(f"{k.decode()}={v.decode('utf-8', 'replace')}" for k, v in reversed(components))
    return rfc2253(x509.Name([a for a in attrs if a is not None]))


@dataclass
class _Seen:
    leaf: x509.Certificate | None
    ca_dns: list[str]
    version: str


def _drive(conn: SSL.Connection, sock: socket.socket, deadline: float) -> None:
    """``do_handshake`` until done: a socket with a timeout is non-blocking underneath, so OpenSSL asks to be called
    again when the peer has not answered yet (``WantReadError``); wait for the socket, up to ``deadline``."""
    while True:
        try:
            conn.do_handshake()
            return
        except (SSL.WantReadError, SSL.WantWriteError) as want:
            left = deadline - time.monotonic()
            wanted = ([sock], []) if isinstance(want, SSL.WantReadError) else ([], [sock])
            readable, writable, _ = select.select(*wanted, [], max(left, 0))
            if not (readable or writable):
                raise OSError("no handshake in time") from None
        except SSL.Error as exc:
            raise OSError(f"the handshake failed: {exc or type(exc).__name__}") from exc


def _handshake(host: str, port: int, name: str | None, timeout: float) -> _Seen:
    """One TLS handshake, no client certificate, the proxy's certificate looked at but not verified.

    Raises:
        OSError: no connection, a timeout, or the handshake failed (``SSL.Error`` is re-raised as ``OSError``).
    """
    ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    ctx.set_verify(SSL.VERIFY_NONE)
    with socket.create_connection((host, port), timeout=timeout) as sock:
        conn = SSL.Connection(ctx, sock)
        if name and not is_ip_literal(name):  # no SNI for an IP address (RFC 6066), as curl and browsers do
            conn.set_tlsext_host_name(name.encode("idna"))
        conn.set_connect_state()
        _drive(conn, sock, time.monotonic() + timeout)
        leaf = conn.get_peer_certificate(as_cryptography=True)
        cas = [_ca_name(ca.get_components()) for ca in conn.get_client_ca_list()]
        version = conn.get_protocol_version_name()
        try:
            conn.shutdown()
        except SSL.Error:
            pass
    return _Seen(leaf, cas, version)


def _compare(served: Mapping[str, Any], row: Mapping[str, Any] | None, seen: _Seen, where: str) -> list[Finding]:
    cert = served["certificate"]
    if seen.leaf is None:
        return [Finding.of(Kind.SERVED_MISMATCH, f"{where} sent no certificate.")]
    got = f"{rfc2253(seen.leaf.subject)}, until {not_after(seen.leaf)}"
    if cert.get("id"):
        same = der_of(seen.leaf) in {der_of(leaf) for leaf in _leaves(row)}
    else:
        # the defaults' PEMs are not in the store: the subject and the key type (one of the pairs) must agree
        same = rfc2253(seen.leaf.subject) == cert.get("subject") and key_type(seen.leaf) in cert.get("key_types", ())
    findings = []
    which = f"certificate {cert['id']}" if cert.get("id") else "the default certificate"
    if same:
        findings.append(Finding.of(Kind.SERVED_MATCH, f"{where} served {got} ({seen.version}): {which}, as said."))
    else:
        findings.append(
            Finding.of(
                Kind.SERVED_MISMATCH,
                f"{where} served {got} ({seen.version}), not {which} the Admin API names.",
                "the configuration may have changed between the two questions: run the doctor again; if it persists, "
                "it is a bug of the gateway.",
            )
        )
    expected = list(served["client_certificate_request"].get("ca_dns") or [])
    if sorted(expected) != sorted(seen.ca_dns):
        findings.append(
            Finding.of(
                Kind.SERVED_MISMATCH,
                f"the CertificateRequest carried the CA names {seen.ca_dns or 'none'}, the Admin API says "
                f"{expected or 'none'}.",
                "run the doctor again; if it persists, it is a bug of the gateway.",
            )
        )
    return findings


# ----------------------------------------------------------------------------------------------------------
# Entry point
# ----------------------------------------------------------------------------------------------------------


def _diagnose(api: AdminApi, query: SniQuery, now: datetime.datetime) -> list[Finding]:
    served = api.find("/tls/served", sni=query.name)
    if isinstance(served, str):  # no ssl listener (the endpoint's message says so), or a gateway without it
        return [
            Finding.of(
                Kind.NOT_FOUND,
                f"the gateway at {api.base} answers GET /tls/served with 404: {served}.",
                "add an ssl entry to proxy_listen."
                if "proxy_listen" in served
                else "use a gateway with this endpoint.",
            )
        ]
    cert = served["certificate"]
    findings = [_served_finding(query.name, cert)]
    if cert.get("error"):
        findings.append(
            Finding.of(
                Kind.SERVED_ERROR,
                f"the certificate cannot be used: {cert['error']}; the handshake is aborted.",
                "PATCH the certificate with a valid cert and key.",
            )
        )
    row = api.get(f"/certificates/{cert['id']}") if cert.get("id") else None
    leaves = _leaves(row)
    seen: _Seen | None = None
    connected: list[Finding] = []
    if query.connect:
        host, port = _proxy_address(api, query.proxy)
        where = f"the proxy at {host}:{port}"
        try:
            seen = _handshake(host, port, query.name, query.timeout)
        except OSError as exc:
            connected = [Finding.of(Kind.CONNECT_FAILED, f"cannot make a handshake with {where}: {exc}.")]
        else:
            connected = _compare(served, row, seen, where)
    if not leaves and seen is not None and seen.leaf is not None:
        leaves = [seen.leaf]  # a default certificate: its PEM is not in the store, the handshake showed it
    if leaves:
        findings += _leaf_findings(query.name, leaves[0], now)
    else:
        findings.append(Finding.of(Kind.NAMES, "names covered: ask with --connect (a default certificate)."))
    findings.append(_request_finding(served["client_certificate_request"]))
    return findings + connected


def diagnose_sni(query: SniQuery, now: datetime.datetime | None = None) -> list[Finding]:
    """``gateway doctor sni``: the findings (see the module docstring); a problem when the Admin API cannot be reached
    (its URL named), the certificate cannot be used or has expired, or the handshake disagrees with the Admin API."""
    try:
        settings = load_settings(query.conf)
    except ConfigError as exc:
        return [Finding.of(Kind.START_REFUSES, f"the settings do not load: {exc}")]
    try:
        api = AdminApi(admin_url(query.admin, settings), query.timeout)
        return _diagnose(api, query, now or datetime.datetime.now(datetime.UTC))
    except AdminError as exc:
        return [Finding.of(Kind.ADMIN_UNREACHABLE, f"{exc}.", UNREACHABLE_FIX)]
