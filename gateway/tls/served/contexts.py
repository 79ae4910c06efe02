"""Certificates compiled into OpenSSL server contexts: the profile, ALPN, a chain + key pair, a certificate row.

Everything here runs when a snapshot is built (never during a handshake): ``compile_row`` turns one certificate
row (``cert``/``key`` and the optional alternative pair, RSA next to ECDSA on the same context so OpenSSL picks
by the client's signature algorithms) into a context, or into Kong's reason why it cannot be loaded.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from OpenSSL import SSL

from gateway.settings import ConfigError
from gateway.tls.engine.errors import ReasonStyle, openssl_reason
from gateway.tls.served.defaults import PemPair
from gateway.tls.served.presets import TlsProfile, apply_profile, pem_file

__all__ = [
    "ALPN_PROTOCOLS",
    "H2_ALPN_PROTOCOLS",
    "Compiled",
    "compile_row",
    "content_key",
    "load_default_pairs_onto",
    "load_pair",
    "new_context",
    "offer_h2",
    "pem_bytes",
]

ALPN_PROTOCOLS: Final = (b"http/1.1", b"http/1.0", b"http/0.9")
"""nginx's ALPN list for an HTTP/1 listener (``NGX_HTTP_ALPN_PROTOS``), in server preference order."""

H2_ALPN_PROTOCOLS: Final = (b"h2", *ALPN_PROTOCOLS)
"""nginx's ALPN list for an ``http2`` listener: ``h2`` first (``NGX_HTTP_V2_ALPN_PROTO``), then the HTTP/1 list."""


#: the connections whose listener serves HTTP/2 (weak: a connection leaves with its last reference)
_OFFERING_H2: weakref.WeakSet[SSL.Connection] = weakref.WeakSet()


def offer_h2(conn: SSL.Connection) -> None:
    """Offer ``h2`` first on this connection (its ``http2`` listener's servername callback calls it, before ALPN is
    selected). Contexts are compiled per certificate and shared by every listener, so the listener's choice travels
    with the connection, not the context."""
    _OFFERING_H2.add(conn)


@dataclass(frozen=True, slots=True)
class Compiled:
    """One certificate row compiled: a context, or the reason it could not be loaded (Kong's wording)."""

    context: SSL.Context | None
    error: str | None


def _select_alpn(conn: SSL.Connection, offered: list[bytes]) -> bytes:
    """nginx's ``SSL_select_next_proto`` with the server list first; no overlap is a fatal alert.

    Raising makes pyOpenSSL return ``SSL_TLSEXT_ERR_ALERT_FATAL`` (OpenSSL sends ``no_application_protocol``) and
    re-raise this ``SSL.Error`` from ``do_handshake``, like any other handshake failure. The server list is the
    listener's: ``h2`` first for the connections ``offer_h2`` marked.
    """
    for proto in H2_ALPN_PROTOCOLS if conn in _OFFERING_H2 else ALPN_PROTOCOLS:
        if proto in offered:
            return proto
    raise SSL.Error([("SSL routines", "", "no application protocol")])


def new_context(profile: TlsProfile, blank: SSL.Context | None = None) -> SSL.Context:
    """A server context with ``profile`` applied: a new one, or ``blank`` (a never-configured context whose
    session-ticket keys are shared with other processes, ``gateway.tls.served.ticket_keys``)."""
    ctx = blank if blank is not None else SSL.Context(SSL.TLS_SERVER_METHOD)
    apply_profile(ctx, profile)
    ctx.set_alpn_select_callback(_select_alpn)
    return ctx


def load_pair(ctx: SSL.Context, cert_pem: bytes, key_pem: bytes, alt: bool) -> str | None:
    """Add one chain + key to ``ctx``; returns Kong's failure reason or None.

    ``use_certificate_chain_file`` sets the leaf and then the chain *of the leaf's key type* (OpenSSL keeps one
    chain per key type, and pyOpenSSL has no ``SSL_CTX_add1_chain_cert``), so calling it once per pair gives the
    RSA and the ECDSA leaf their own intermediates. The PEM reaches OpenSSL through an in-memory file.
    """
    label = "alternate " if alt else ""
    with pem_file(cert_pem) as path:
        try:
            ctx.use_certificate_chain_file(path)
        except SSL.Error as exc:
            return f"could not parse PEM certificate: {openssl_reason(exc, ReasonStyle.REASONS)}"
    with pem_file(key_pem) as path:
        try:
            ctx.use_privatekey_file(path)
        except SSL.Error as exc:
            reason = openssl_reason(exc, ReasonStyle.REASONS)
            if "mismatch" in reason:
                return f"could not set {label}configured private key: {reason}"
            return f"could not parse PEM private key: {reason}"
    try:
        ctx.check_privatekey()
    except SSL.Error as exc:
        return f"could not set {label}configured private key: {openssl_reason(exc, ReasonStyle.REASONS)}"
    return None


def pem_bytes(value: Any) -> bytes | None:
    """A row's PEM text as the bytes OpenSSL reads (None when absent or not text)."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    return None


def compile_row(row: Mapping[str, Any], profile: TlsProfile) -> Compiled:
    """Compile one certificate row (``cert``/``key`` and optional ``cert_alt``/``key_alt``)."""
    cert, key = pem_bytes(row.get("cert")), pem_bytes(row.get("key"))
    if cert is None or key is None:
        return Compiled(None, "could not parse PEM certificate: cert and key are required")
    ctx = new_context(profile)
    error = load_pair(ctx, cert, key, alt=False)
    if error is None:
        cert_alt, key_alt = pem_bytes(row.get("cert_alt")), pem_bytes(row.get("key_alt"))
        if cert_alt is not None and key_alt is not None:
            error = load_pair(ctx, cert_alt, key_alt, alt=True)
    if error is not None:
        return Compiled(None, error)
    return Compiled(ctx, None)


def content_key(row: Mapping[str, Any]) -> tuple[Any, ...]:
    """What a compiled certificate depends on in its row: equal keys, one context (shared, or reused)."""
    return (row.get("cert"), row.get("key"), row.get("cert_alt"), row.get("key_alt"))


def load_default_pairs_onto(ctx: SSL.Context, pairs: Sequence[PemPair]) -> SSL.Context:
    """Load the listener's default certificates onto ``ctx`` (the default entry's, the base context).

    Raises:
        ConfigError: OpenSSL cannot load one (nginx would not start either).
    """
    for pair in pairs:
        error = load_pair(ctx, pair.cert, pair.key, alt=False)
        if error is not None:
            raise ConfigError(f"cannot load default SSL certificate ({pair.source}): {error}")
    return ctx
