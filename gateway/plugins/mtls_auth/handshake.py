"""Requesting a client certificate in the handshake, per SNI (Kong EE's ``kong/tls/plugins/certificate.lua``).

Theory of operation
-------------------
A plugin that authenticates with client certificates (mtls-auth) describes *where* to ask with a ``ClientCertSniMap``:
plain names, names with a leftmost wildcard (``*.example.com``: any SNI ending in ``.example.com``, however many
labels), names with a rightmost wildcard (``example.*``: any SNI starting with ``example.``), and ``*`` (every other
handshake, including clients that send no SNI). Each entry carries the CA certificates to advertise
(``send_ca_dn``), or none. Matching is Kong's ``match_sni``: plain name, then leftmost wildcards, then rightmost
wildcards, then ``*``; we try wildcards longest first so the answer never depends on dict order (Kong iterates a
Lua hash).

In the servername callback, after the certificate is chosen (``server.make_sni_callback``), ``ClientCertRequest``
does what ``ngx.ssl.verify_client`` + ``disable_session_reuse`` do for a matching SNI:

1. switch the connection to a *variant* of the chosen certificate's context, precompiled here: same certificate(s)
   and key(s) and TLS profile, plus the CA names to advertise and a distinct session-id context;
2. ``set_verify(VERIFY_PEER, accept everything)``: OpenSSL sends a CertificateRequest, and the handshake completes
   whatever the client sends (nothing, an expired or untrusted certificate): the verdict is the access phase's;
3. ``OP_NO_TICKET`` on the connection (OpenSSL honours it when set in this callback: no ticket is issued).

Why variants disable the session cache. A resumed session skips the CertificateRequest (and, from a serialized
ticket, loses the intermediates the client sent), which is why Kong disables session reuse on these connections.
OpenSSL decides whether to send a session id in the ServerHello from the *current* context's session-cache mode,
read after the servername callback: the variants have the cache off, so a TLS 1.2 client gets an empty session id
and nothing is cached; ``OP_NO_TICKET`` stops tickets (TLS 1.2) and, with the cache off, TLS 1.3 tickets too.
The variants also carry their own session-id context, so a session could never be shared with plain handshakes.

Contexts cannot be changed once a connection used them (pyOpenSSL), so every variant is built when the snapshot is
built, never in the callback: one per (certificate context, advertised CA set).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL

from gateway.tls.engine.x509 import to_openssl
from gateway.tls.served.certificates import CertificateEntry, CertificateIndex
from gateway.tls.served.contexts import compile_row, content_key, load_pair, new_context
from gateway.tls.served.defaults import PemPair

__all__ = ["CATCH_ALL", "ClientCertRequest", "ClientCertSniMap", "SniRequest"]

CATCH_ALL: Final = "*"
_MTLS_SESSION_ID_CONTEXT: Final = b"gateway-client-cert"


def _accept_any(conn: SSL.Connection, cert: Any, errno: int, depth: int, ok: int) -> bool:
    """The permissive verify callback: the handshake never fails on the client's certificate."""
    return True


@dataclass(frozen=True, slots=True)
class SniRequest:
    """What to do for one SNI entry: request a certificate, advertising ``ca_names`` (empty: no CA list)."""

    pattern: str
    ca_certificates: tuple[x509.Certificate, ...] = ()

    @property
    def ca_key(self) -> bytes:
        """Identity of the advertised CA set (variants are shared by entries advertising the same names)."""
        if not self.ca_certificates:
            return b""
        names = sorted({ca.subject.public_bytes() for ca in self.ca_certificates})
        return hashlib.sha256(b"\0".join(names)).digest()


class ClientCertSniMap:
    """SNI pattern -> ``SniRequest``, matched as Kong's ``match_sni`` does."""

    __slots__ = ("_catch_all", "_plain", "_prefix", "_suffix")

    def __init__(self, requests: Iterable[SniRequest]) -> None:
        self._plain: dict[str, SniRequest] = {}
        suffix: list[tuple[str, SniRequest]] = []  # "*.example.com" -> ends with ".example.com"
        prefix: list[tuple[str, SniRequest]] = []  # "example.*" -> starts with "example."
        self._catch_all: SniRequest | None = None
        for request in requests:
            pattern = request.pattern
            if pattern == CATCH_ALL:
                self._catch_all = request
            elif pattern.startswith("*"):
                suffix.append((pattern[1:], request))
            elif pattern.endswith("*"):
                prefix.append((pattern[:-1], request))
            else:
                self._plain[pattern] = request
        self._suffix = tuple(sorted(suffix, key=lambda item: (-len(item[0]), item[0])))
        self._prefix = tuple(sorted(prefix, key=lambda item: (-len(item[0]), item[0])))

    def match(self, server_name: str | None) -> SniRequest | None:
        """The request policy for a client's SNI (None: no SNI sent), or None when no certificate is requested."""
        if server_name is not None:
            found = self._plain.get(server_name)
            if found is not None:
                return found
            for tail, request in self._suffix:
                if server_name.endswith(tail):
                    return request
            for head, request in self._prefix:
                if server_name.startswith(head):
                    return request
        return self._catch_all

    @property
    def requests(self) -> list[SniRequest]:
        found = list(self._plain.values()) + [r for _, r in self._suffix] + [r for _, r in self._prefix]
        if self._catch_all is not None:
            found.append(self._catch_all)
        return found

    def __bool__(self) -> bool:
        return bool(self._plain or self._suffix or self._prefix or self._catch_all)

    def __repr__(self) -> str:
        return f"ClientCertSniMap({[r.pattern for r in self.requests]})"


def _finish_variant(ctx: SSL.Context, cas: Sequence[x509.Certificate]) -> SSL.Context:
    ctx.set_session_id(_MTLS_SESSION_ID_CONTEXT)
    # OpenSSL reads the *current* context's cache mode when it writes the ServerHello: with the cache off it sends
    # an empty session id, so a TLS 1.2 session born here can never be resumed from the listener's cache
    ctx.set_session_cache_mode(SSL.SESS_CACHE_OFF)
    if cas:
        ctx.set_client_ca_list([to_openssl(ca).get_subject() for ca in cas])
    return ctx


def _ca_pems(cas: Sequence[x509.Certificate]) -> tuple[bytes, ...]:
    return tuple(ca.public_bytes(serialization.Encoding.PEM) for ca in cas)


class ClientCertRequest:
    """The certificate-phase hook: ``(conn, server_name, entry) -> None`` for ``make_sni_callback``.

    Build it once per snapshot with ``build``; ``previous`` lets unchanged variants be reused across rebuilds.
    """

    __slots__ = ("_by_content", "_variants", "errors", "sni_map")

    def __init__(
        self,
        sni_map: ClientCertSniMap,
        variants: dict[tuple[int, bytes], SSL.Context],
        errors: list[str],
        by_content: dict[tuple[Any, ...], SSL.Context] | None = None,
    ) -> None:
        self.sni_map = sni_map
        self._variants = variants
        self._by_content = by_content or {}
        #: why some variants could not be built (their handshakes then fall back to no CertificateRequest)
        self.errors = errors

    @classmethod
    def build(
        cls,
        sni_map: ClientCertSniMap,
        index: CertificateIndex,
        certificates: Mapping[str, Mapping[str, Any]],
        previous: ClientCertRequest | None = None,
    ) -> ClientCertRequest:
        """Precompile a variant of every servable context for every advertised CA set of ``sni_map``.

        ``certificates``: the ``certificates`` rows by id (the build's ``ConfigIndex``), for the variants' PEMs.
        """
        profile = index.profile
        rows = certificates
        ca_sets: dict[bytes, tuple[x509.Certificate, ...]] = {}
        for request in sni_map.requests:
            ca_sets.setdefault(request.ca_key, request.ca_certificates)
        entries: list[CertificateEntry] = [index.default] + [
            entry for name in index.names if (entry := index.get(name)) is not None
        ]
        reuse = previous._by_content if previous is not None else {}
        variants: dict[tuple[int, bytes], SSL.Context] = {}
        by_content: dict[tuple[Any, ...], SSL.Context] = {}
        errors: list[str] = []
        seen: set[int] = set()
        for entry in entries:
            if entry.error is not None or id(entry.context) in seen:
                continue
            seen.add(id(entry.context))
            if entry.certificate_id is None:
                content: tuple[Any, ...] = ("default", *(p.cert for p in index.default_pairs), profile)
            else:
                row = rows.get(entry.certificate_id)
                if row is None:
                    continue
                content = (*content_key(row), profile)
            for ca_key, cas in ca_sets.items():
                full_key = (*content, _ca_pems(cas))
                ctx = by_content.get(full_key) or reuse.get(full_key)
                if ctx is None:
                    if entry.certificate_id is None:
                        ctx = _default_variant(index.default_pairs, index)
                    else:
                        compiled = compile_row(rows[entry.certificate_id], profile)
                        ctx = compiled.context
                        if ctx is None:
                            errors.append(f"certificate {entry.certificate_id}: {compiled.error}")
                            continue
                    ctx = _finish_variant(ctx, cas)
                by_content[full_key] = ctx
                variants[(id(entry.context), ca_key)] = ctx
        return cls(sni_map, variants, errors, by_content)

    def __call__(self, conn: SSL.Connection, server_name: str | None, entry: CertificateEntry) -> None:
        request = self.sni_map.match(server_name)
        if request is None or entry.error is not None:
            return
        variant = self._variants.get((id(entry.context), request.ca_key))
        if variant is not None:
            conn.set_context(variant)
        conn.set_verify(SSL.VERIFY_PEER, _accept_any)
        conn.set_options(SSL.OP_NO_TICKET)
        session = conn.get_app_data()  # the ``TlsSession``: the decision, for the trace (``mtls_auth.trace``)
        if hasattr(session, "client_cert_request"):
            session.client_cert_request = request


def _default_variant(pairs: Sequence[PemPair], index: CertificateIndex) -> SSL.Context:
    ctx = new_context(index.profile)
    for pair in pairs:
        error = load_pair(ctx, pair.cert, pair.key, alt=False)
        if error is not None:  # the index loaded these already; cannot fail unless the files changed under us
            raise ValueError(error)
    return ctx
