"""Connecting to an upstream under a compiled profile: peer names, the session cache, nginx's failure wording.

Per request, only ``peer_names(upstream_host)`` runs, and only when a new connection is opened. The session cache
is keyed exactly like the keepalive pool (see ``SessionCache``); a failed handshake becomes a ``HandshakeFailure``
carrying nginx's reason, level and whether it timed out, which the proxy turns into its error line and status.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Final

from OpenSSL import SSL

from gateway.tls.engine.app_transport import TlsTransport
from gateway.tls.engine.errors import TlsHandshakeError
from gateway.tls.engine.hostnames import is_ip_literal
from gateway.tls.engine.transport import open_tls_connection
from gateway.tls.upstream.profile import UpstreamTlsProfile

__all__ = [
    "ALPN",
    "HandshakeFailure",
    "SessionCache",
    "describe_handshake_error",
    "open_upstream_tls",
    "peer_names",
]

#: What we offer in ALPN by default: the proxy speaks HTTP/1.1 upstream (``grpcs`` services offer ``h2``).
ALPN: Final = ("http/1.1",)
#: Sessions kept by ``SessionCache`` (one per pool key, the newest wins), like a bounded nginx upstream cache.
SESSION_CACHE_SIZE: Final = 4096


def peer_names(upstream_host: str) -> tuple[str | None, str]:
    """``(sni, check_name)`` for an upstream host as nginx derives them from ``proxy_ssl_name $upstream_host``.

    The ``:port`` suffix is stripped; no SNI is sent for an IP literal or an empty name, but the host check
    still uses the name as is (``ngx_ssl_check_host`` passes it to ``X509_check_host``, IP or not).
    """
    name = upstream_host
    if name.startswith("["):
        end = name.find("]")
        name = name[: end + 1] if end != -1 else name
    else:
        colon = name.rfind(":")
        if colon != -1 and name.count(":") == 1:
            name = name[:colon]
    if not name or is_ip_literal(name):
        return None, name.strip("[]")
    return name, name


# ----------------------------------------------------------------------------------------------------------
# Context cache
# ----------------------------------------------------------------------------------------------------------


# ----------------------------------------------------------------------------------------------------------
# Sessions
# ----------------------------------------------------------------------------------------------------------


class SessionCache:
    """Upstream TLS sessions keyed exactly like the keepalive pool (peer address, upstream host, TLS identity).

    Only sessions of connections that completed their handshake *and* its checks are stored (the connector
    stores them after the first complete response, when TLS 1.3 tickets have arrived), so a resumed session -
    which carries no new certificate check - never crosses from one TLS identity to another. nginx keys its
    cache by peer address alone, which is how a session verified (or failed) under one location's trust settings
    is resumed under another's.

    A session also remembers the ``SSL.Context`` it was made with: OpenSSL (and pyOpenSSL, which refuses it) only
    resumes a session on the context that created it, and a context dropped by ``ContextCache.retain`` and built
    again later is a different object; such a session is simply not offered.
    """

    __slots__ = ("_entries", "max_entries")

    def __init__(self, max_entries: int = SESSION_CACHE_SIZE) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, tuple[SSL.Context, SSL.Session]] = OrderedDict()

    def get(self, key: Hashable, context: SSL.Context) -> SSL.Session | None:
        """The session stored for ``key`` if it was made with ``context``."""
        entry = self._entries.get(key)
        if entry is None or entry[0] is not context:
            return None
        return entry[1]

    def put(self, key: Hashable, context: SSL.Context, session: SSL.Session | None) -> None:
        if session is None or self.max_entries <= 0:
            return
        entries = self._entries
        entries[key] = (context, session)
        entries.move_to_end(key)
        if len(entries) > self.max_entries:
            entries.popitem(last=False)

    def discard(self, key: Hashable) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


# ----------------------------------------------------------------------------------------------------------
# Connecting
# ----------------------------------------------------------------------------------------------------------


class HandshakeFailure(Exception):
    """An upstream TLS handshake failed; the fields are what the proxy logs and answers.

    Attributes:
        reason: the nginx message without its ``while ...`` action, e.g.
            ``upstream SSL certificate verify error: (20:unable to get local issuer certificate)``; also the
            ``X-Gateway-TLS-Error`` value.
        level: the error-log level nginx uses for it (``error``, or ``info`` for a peer closing mid-handshake).
        timeout: the handshake timed out (nginx answers 504 for those).
        error: the engine's ``TlsHandshakeError``.
    """

    def __init__(self, reason: str, level: str, timeout: bool, error: TlsHandshakeError) -> None:
        super().__init__(reason)
        self.reason = reason
        self.level = level
        self.timeout = timeout
        self.error = error


def describe_handshake_error(exc: TlsHandshakeError) -> HandshakeFailure:
    """nginx's wording for a failed upstream handshake (``ngx_ssl_handshake`` / ``ngx_http_upstream_ssl_handshake``).

    - verification: ``upstream SSL certificate verify error: (<code>:<text>)``
    - host check: ``upstream SSL certificate does not match "<name>"``
    - peer closed: ``peer closed connection in SSL handshake`` (nginx logs it at ``info``)
    - timeout: ``upstream timed out (110: Connection timed out)``
    - anything else: ``SSL_do_handshake() failed (SSL: error:SSL routines::<reason>)`` (nginx also prints the packed
      OpenSSL error number, which pyOpenSSL does not expose)
    """
    kind = exc.kind
    if kind == "verify" and exc.verify_text is not None:
        return HandshakeFailure(f"upstream SSL certificate verify error: ({exc.verify_text})", "error", False, exc)
    if kind == "hostname":
        return HandshakeFailure(exc.reason, "error", False, exc)
    if kind == "timeout":
        return HandshakeFailure("upstream timed out (110: Connection timed out)", "error", True, exc)
    if kind == "eof" and exc.reason == "peer closed connection in SSL handshake":
        return HandshakeFailure(exc.reason, "info", False, exc)
    if kind == "eof":
        return HandshakeFailure(f"SSL_do_handshake() failed ({exc.reason})", "error", False, exc)
    return HandshakeFailure(f"SSL_do_handshake() failed (SSL: error:SSL routines::{exc.reason})", "error", False, exc)


async def open_upstream_tls(
    loop: Any,
    factory: Callable[[], Any],
    ip: str,
    port: int,
    profile: UpstreamTlsProfile,
    upstream_host: str,
    timeout: float | None,
    ssl_session: SSL.Session | None = None,
    alpn: tuple[str, ...] = ALPN,
) -> tuple[TlsTransport, Any]:
    """Connect and complete the handshake under ``profile`` for ``upstream_host`` (SNI and host check), offering
    ``alpn`` (``http/1.1``; ``h2`` for ``grpcs``, see ``gateway.upstream.h2.connect``).

    Raises:
        HandshakeFailure: the handshake or its checks failed (or timed out).
        OSError: the TCP connection failed (``TimeoutError`` when the connect itself timed out).
    """
    sni, check_name = peer_names(upstream_host)
    try:
        return await open_tls_connection(
            loop,
            ip,
            port,
            profile.context,
            sni,
            factory,
            timeout,
            alpn_protocols=alpn,
            verify=profile.verify,
            verify_hostname=check_name if profile.verify else None,
            ssl_session=ssl_session,
        )
    except TlsHandshakeError as exc:
        raise describe_handshake_error(exc) from None
