"""An ``ssl`` proxy listener: TLS termination in front of the same HTTP/1.1 connection as the plain listener.

Theory of operation
-------------------
One ``TlsListener`` per ``proxy_listen ... ssl`` entry. It owns the listener's *base* ``SSL.Context`` (protocol
versions, options, session cache and ticket keys live there, whatever certificate a connection is switched to),
built once at start and again on SIGHUP, with the servername callback installed. In a worker process the first
one is built on the blank context inherited from the zygote (``gateway.tls.served.ticket_keys``), so that every worker
encrypts session tickets with the same keys. The servername callback reads
``state.snapshot.certificates`` on every ClientHello, so a certificate or SNI written through the Admin API or
``POST /config`` is served from the next handshake on, while established connections keep their session.

Each accepted socket first gets a ``FirstBytes`` protocol, which does what nginx's ``ngx_http_ssl_handshake``
does with its one-byte ``MSG_PEEK``: a first byte of ``0x16`` (a TLS handshake record) or with the high bit set
(an SSLv2-style hello) starts TLS; anything else is served as plain HTTP, so a well-formed request gets nginx's
400 page "The plain HTTP request was sent to HTTPS port" (``HttpConnection`` rule 6) and garbage gets the
ordinary 400. The protocol then hands the socket over with ``transport.set_protocol`` and steps out of the way:
afterwards every read goes straight to ``TlsProtocol`` (or the HTTP connection), with no extra call per read.

Timeouts: nginx arms ``client_header_timeout`` when it accepts an ``ssl`` connection and lets it run through the
handshake (Kong's OpenResty predates ``ssl_handshake_timeout``); the handshake gets what is left of it: the
accept timer's handle is handed to ``TlsProtocol`` (``handshake_timer``) rather than cancelled and replaced, and
when it fires it ends the handshake there.

Failures are logged as nginx logs them, at ``info`` (Kong's default ``notice`` hides them)::

    SSL_do_handshake() failed (SSL: <OpenSSL reason>) while SSL handshaking, client: 127.0.0.1, server: 0.0.0.0:8443
    peer closed connection in SSL handshake while SSL handshaking, client: ..., server: ...
    client timed out (110: Connection timed out) while SSL handshaking, client: ..., server: ...
    client closed connection while SSL handshaking, client: ..., server: ...      (EOF before any byte)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, cast

from OpenSSL import SSL

from gateway.downstream.connection import FIRST_REQUEST_GRACE
from gateway.downstream.contracts import ListenerState
from gateway.observability.tls_metrics import TLS
from gateway.tls.engine.errors import TlsHandshakeError
from gateway.tls.engine.transport import TlsProtocol
from gateway.tls.served import ticket_keys
from gateway.tls.served.certificates import CertificateIndex, base_context, make_sni_callback
from gateway.tls.served.contexts import offer_h2

if TYPE_CHECKING:
    from gateway.settings import Listener

__all__ = ["FirstBytes", "HandshakeListener", "TlsListener"]

_TLS_HANDSHAKE_RECORD = 0x16
_SSLV2_BIT = 0x80


class TlsListener:
    """One ``ssl`` listener: its base context, SNI callback, handshake-error log and protocol factory.

    Args:
        state: the proxy state (settings, logs, and the snapshot whose ``certificates`` the callback reads).
        listener: the ``proxy_listen`` entry.
        app_factory: the HTTP connection factory shared with the plain listener.
        loop: the loop the listener's sockets are served on (``ProxyState.protocol_factory``'s).
        position: this listener's rank among the process's ``ssl`` listeners (which inherited blank context).
    """

    __slots__ = ("_fallback", "app_factory", "context", "listener", "loop", "server_addr", "state")

    def __init__(
        self,
        state: ListenerState,
        listener: Listener,
        app_factory: Callable[[], asyncio.Protocol],
        loop: asyncio.AbstractEventLoop,
        position: int = 0,
    ) -> None:
        self.state = state
        self.listener = listener
        self.app_factory = app_factory
        #: handed to each connection's protocols (``TlsProtocol``'s ``loop`` says why)
        self.loop = loop
        self.server_addr = f"{listener.host}:{listener.port}"
        index = state.snapshot.certificates
        if index is None:
            raise RuntimeError("the snapshot has no certificate index: build it with an ssl listener configured")
        self._fallback: CertificateIndex = index
        self.context: SSL.Context = self._new_context(index, ticket_keys.take(position))

    # -- configuration ------------------------------------------------------------------------------------------
    def _current_index(self) -> CertificateIndex:
        index = self.state.snapshot.certificates
        if index is None:
            return self._fallback
        return cast(CertificateIndex, index)

    def _certificate_phase(self) -> Any:
        """The current snapshot's certificate-phase hook (plugins: mtls-auth's client-certificate request)."""
        return self.state.snapshot.plugins.certificate_phase

    def _new_context(self, index: CertificateIndex, blank: SSL.Context | None = None) -> SSL.Context:
        callback = make_sni_callback(
            self._current_index, self.state.error_log, certificate_phase=self._certificate_phase
        )
        if self.listener.http2:  # ALPN offers h2 first on this listener's connections only
            callback = _offering_h2(callback)
        return base_context(None, index, sni_callback=callback, blank=blank)

    def refresh(self) -> None:
        """Rebuild the base context from the current snapshot (SIGHUP: new ``ssl_*`` settings or default certs).

        New connections get it; open ones keep theirs. As with an nginx reload, session tickets issued under
        the old context's keys are no longer accepted (clients fall back to a full handshake).
        """
        index = self._current_index()
        self._fallback = index
        self.context = self._new_context(index)

    # -- connections --------------------------------------------------------------------------------------------
    def protocol_factory(self) -> FirstBytes:
        """For ``loop.create_server``: one ``FirstBytes`` per accepted socket."""
        return FirstBytes(self)

    def handshake_timeout(self) -> float:
        return float(self.state.settings.client_header_timeout)

    def log_failure(self, what: str, peer: Any) -> None:
        log = self.state.error_log
        if log.info_enabled:
            client = peer[0] if isinstance(peer, tuple) else "unix:"
            log.info(f"{what} while SSL handshaking, client: {client}, server: {self.server_addr}")

    def handshake_done(self, session: Any) -> None:
        """A handshake completed on this listener (``kong_tls_handshakes_total``)."""
        TLS.handshake(self.server_addr, session.version, session.session_reused)

    def on_handshake_error(self, exc: TlsHandshakeError, peer: Any) -> None:
        """``TlsProtocol``'s failure hook: one nginx-shaped ``info`` line per failed handshake (and its count)."""
        kind = exc.kind
        TLS.handshake_failure("downstream", kind, exc.reason)
        if not self.state.error_log.info_enabled:
            return
        if kind == "timeout":
            what = "client timed out (110: Connection timed out)"
        elif kind == "eof":
            what = exc.reason  # "peer closed connection in SSL handshake"
        else:
            what = f"SSL_do_handshake() failed (SSL: {exc.reason})"
        self.log_failure(what, peer)


def _offering_h2(on_server_name: Callable[[SSL.Connection], None]) -> Callable[[SSL.Connection], None]:
    """The servername callback of an ``http2`` listener: OpenSSL calls it for every ClientHello, before ALPN is
    selected, so marking the connection there decides the ALPN list of exactly this listener's handshakes."""

    def callback(conn: SSL.Connection) -> None:
        offer_h2(conn)
        on_server_name(conn)

    return callback


class HandshakeListener(Protocol):
    """What ``FirstBytes`` uses of its ``TlsListener``. A Protocol, not the class: this module is compiled
    (``gateway/compiled.py``), where an argument typed as a class must be that class, and the unit tests drive
    ``FirstBytes`` with a stand-in listener."""

    @property
    def state(self) -> ListenerState: ...

    @property
    def context(self) -> SSL.Context: ...

    @property
    def app_factory(self) -> Callable[[], asyncio.Protocol]: ...

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...

    def handshake_timeout(self) -> float: ...

    def log_failure(self, what: str, peer: Any) -> None: ...

    def handshake_done(self, session: Any) -> None: ...

    def on_handshake_error(self, exc: TlsHandshakeError, peer: Any) -> None: ...


class FirstBytes(asyncio.Protocol):
    """The first protocol of an ``ssl`` listener's socket: TLS or plain HTTP, decided by the first byte."""

    __slots__ = ("_listener", "_raw", "_timer", "_tls")

    def __init__(self, listener: HandshakeListener) -> None:
        self._listener = listener
        self._raw: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        #: the ``TlsProtocol`` that adopted the timer (its handshake timeout), once the first byte said TLS
        self._tls: TlsProtocol | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._raw = cast(asyncio.Transport, transport)
        loop = self._listener.loop
        state = self._listener.state
        state.pending.add(self)  # a drain waits for it until it is an HTTP connection (or gone)
        timeout = self._listener.handshake_timeout()
        if state.shutting_down:
            timeout = min(timeout, FIRST_REQUEST_GRACE)
        self._timer = loop.call_at(loop.time() + timeout, self._timed_out)

    def shutdown(self) -> None:
        """The process stops: a socket that has not sent its first byte gets ``FIRST_REQUEST_GRACE`` at most (a
        handshake under way runs on under its own timeout)."""
        timer = self._timer
        if self._raw is not None and timer is not None:
            loop = self._listener.loop
            if timer.when() > loop.time() + FIRST_REQUEST_GRACE:
                timer.cancel()
                self._timer = loop.call_at(loop.time() + FIRST_REQUEST_GRACE, self._timed_out)

    def _settled(self) -> None:
        tls = self._tls
        if tls is not None and tls.session.established:  # settled once: the handshake completed
            self._listener.handshake_done(tls.session)
        self._listener.state.settle_pending(self)

    def data_received(self, data: bytes) -> None:
        raw = self._raw
        if raw is None or not data:
            return
        listener = self._listener
        first = data[0]
        protocol: asyncio.Protocol
        if first == _TLS_HANDSHAKE_RECORD or first & _SSLV2_BIT:
            # the handshake runs on what is left of the accept timer: the same handle, now TlsProtocol's to cancel
            timer = self._timer
            self._timer = None
            protocol = self._tls = TlsProtocol(
                listener.context,
                listener.app_factory,
                server_side=True,
                on_handshake_error=listener.on_handshake_error,
                handshake_timer=timer,
                on_settled=self._settled,
                loop=listener.loop,
            )
            self._raw = None
            raw.set_protocol(protocol)
            protocol.connection_made(raw)
        else:
            self._cancel_timer()
            protocol = listener.app_factory()
            self._raw = None
            raw.set_protocol(protocol)
            protocol.connection_made(raw)  # an HttpConnection, registered from here on
            self._settled()
        protocol.data_received(data)

    def eof_received(self) -> bool:
        if self._raw is not None:
            self._listener.log_failure("client closed connection", self._raw.get_extra_info("peername"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        self._raw = None
        self._settled()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self) -> None:
        self._timer = None
        tls = self._tls
        if tls is not None:  # the handshake's timeout now: TlsProtocol aborts and logs it (if still handshaking)
            self._tls = None
            tls.handshake_timed_out()
            return
        raw = self._raw
        if raw is None:
            return
        self._raw = None
        self._listener.log_failure("client timed out (110: Connection timed out)", raw.get_extra_info("peername"))
        raw.abort()
