"""asyncio glue for ``TlsSession``: a raw-socket protocol below, an ``asyncio.Transport`` for the app above.

::

    socket <-> raw transport (uvloop) <-> TlsProtocol --session--> TlsTransport <-> app protocol (HTTP)

``TlsProtocol`` (here) is what ``loop.create_server`` / ``loop.create_connection`` see; ``TlsTransport``
(``app_transport.py``) is what the app protocol writes to. It feeds ciphertext to the
session, writes what the session produces, and - only once the handshake has completed - creates the app
protocol and calls ``connection_made(TlsTransport)``, then ``data_received(plaintext)``, ``eof_received()`` and
``connection_lost(exc)``, each at most once per event, like asyncio's ``sslproto`` but on pyOpenSSL.

Behaviour, and where it comes from:

- **Handshake failures** (garbage, alerts, verification, peer EOF, timeout) never reach the app and never raise
  into the loop: the alert OpenSSL produced is written, the socket is closed (aborted on timeout), and
  ``on_handshake_error(exc, peername)`` is called (server side) or the ``open_tls_connection`` caller gets the
  ``TlsHandshakeError``.
- **Peer close**: a close_notify and a plain TCP EOF after the handshake are both an ordinary end of stream:
  ``eof_received()`` then, unless it returns True (TLS 1.3 half-close, the app closes later),
  ``connection_lost(None)``. nginx treats OpenSSL 3's "unexpected eof while reading" as a clean close and
  asyncio's sslproto calls ``eof_received`` then ``connection_lost(None)`` in both cases; the difference is
  kept in ``TlsInfo.close_notify_received``. We answer a close_notify with ours, and a TCP EOF with nothing.
- **Our close**: ``close()`` writes a close_notify and closes the socket once the buffer is flushed, without
  waiting for the peer's (as nginx does); ``abort()`` drops everything.
- **Release**: once the socket is gone (``connection_lost``) nothing here is left in a reference cycle (the
  protocol forgets its ``TlsTransport``, the session is released), so a closed connection is freed by reference
  counting, not by the collector's rare passes over its oldest generation, where a long-lived connection ends up.
- **Backpressure**: the raw transport's ``pause_writing``/``resume_writing`` go straight to the app protocol
  (its buffer is the ciphertext buffer); the app's ``pause_reading`` pauses the socket, and plaintext already
  decrypted when the app paused is held and delivered on ``resume_reading``.

The data path is one ``session.receive`` per socket read and one ``session.send`` + one socket write per app
write (``writelines`` joins first): no tasks, no futures, no logging.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, cast

from OpenSSL import SSL

from gateway.tls.engine.app_transport import CLOSED, HANDSHAKING, OPEN, TlsTransport
from gateway.tls.engine.errors import TlsError, TlsHandshakeError
from gateway.tls.engine.session import TlsSession

__all__ = ["HandshakeErrorHandler", "TlsProtocol", "create_tls_server_protocol", "open_tls_connection"]

#: ``on_handshake_error(exc, peername)``: called once per failed server-side handshake (for the error log).
HandshakeErrorHandler = Callable[[TlsHandshakeError, Any], None]

DEFAULT_HANDSHAKE_TIMEOUT = 60.0  # nginx's client_header_timeout / proxy_connect_timeout default


class TlsProtocol(asyncio.Protocol):
    """The raw-socket side: one per TCP connection, either direction. See the module docstring.

    Args:
        context: the ``SSL.Context`` (server side: SNI callback installed by the caller).
        app_protocol_factory: called once the handshake has completed (never for failed handshakes).
        server_side: accept or connect.
        server_hostname, alpn_protocols, verify, verify_hostname, ssl_session: client side, see ``TlsSession``.
        handshake_timeout: seconds from ``connection_made`` to a completed handshake; then the socket is
            aborted and the failure reported with ``kind="timeout"``.
        on_settled: called once, when the app has been handed its transport or the connection is gone (the
            ``ssl`` listener counts connections still handshaking, so that a drain waits for them).
        handshake_timer: instead of ``handshake_timeout``, a handle the caller armed already, whose callback
            calls ``handshake_timed_out()``: adopted (cancelled on completion or loss) rather than a second
            handle created (the ``ssl`` listener's accept timer, so one handle covers accept and handshake).
        on_handshake_error: server side, ``(exc, peername)`` for each failed handshake.
        waiter: client side, resolved with ``None`` when the app is connected, or with the exception.
        loop: the running loop, when the caller has it; else ``connection_made`` asks ``asyncio`` (CPython 3.11's
            ``get_running_loop`` makes a ``getpid`` system call each time: three per accepted connection were
            the gateway's only system calls beyond nginx's under S5).
    """

    __slots__ = (
        "_app",
        "_app_factory",
        "_app_paused",
        "_app_transport",
        "_backlog",
        "_eof_pending",
        "_error",
        "_loop",
        "_on_handshake_error",
        "_on_settled",
        "_raw",
        "_session",
        "_state",
        "_timeout",
        "_timer",
        "_waiter",
    )

    def __init__(
        self,
        context: SSL.Context,
        app_protocol_factory: Callable[[], asyncio.BaseProtocol],
        *,
        server_side: bool,
        server_hostname: str | None = None,
        alpn_protocols: Sequence[str] | None = None,
        verify: bool = False,
        verify_hostname: str | None = None,
        ssl_session: SSL.Session | None = None,
        handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
        on_handshake_error: HandshakeErrorHandler | None = None,
        waiter: asyncio.Future[None] | None = None,
        handshake_timer: asyncio.TimerHandle | None = None,
        on_settled: Callable[[], None] | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._session = TlsSession(
            context,
            server_side=server_side,
            server_hostname=server_hostname,
            alpn_protocols=alpn_protocols,
            verify=verify,
            verify_hostname=verify_hostname,
            ssl_session=ssl_session,
        )
        self._app_factory = app_protocol_factory
        self._app: asyncio.Protocol | None = None
        self._app_transport: TlsTransport | None = None
        self._raw: asyncio.Transport | None = None
        self._loop: asyncio.AbstractEventLoop | None = loop
        self._state = HANDSHAKING
        self._timeout = handshake_timeout if handshake_timer is None else None
        self._timer: asyncio.TimerHandle | None = handshake_timer
        self._on_handshake_error = on_handshake_error
        self._on_settled = on_settled
        self._waiter = waiter
        self._app_paused = False
        self._backlog: list[bytes] | None = None
        self._eof_pending = False
        self._error: TlsError | None = None

    # -- accessors --------------------------------------------------------------------------------------------

    @property
    def session(self) -> TlsSession:
        """The sans-I/O session (for the SNI callback's bookkeeping and tests)."""
        return self._session

    @property
    def app_transport(self) -> TlsTransport | None:
        """The ``TlsTransport`` handed to the app, once the handshake has completed."""
        return self._app_transport

    @property
    def app_protocol(self) -> asyncio.Protocol | None:
        """The app protocol, once created."""
        return self._app

    # -- raw-side protocol callbacks ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing asyncio.Transport.
        self._raw = transport = cast(asyncio.Transport, transport)
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        if self._timeout is not None:
            self._timer = loop.call_later(self._timeout, self.handshake_timed_out)
        if not self._session.server_side:
            try:
                hello = self._session.start()
            except TlsHandshakeError as exc:
                self._handshake_failed(exc)
                return
            transport.write(hello)

    def data_received(self, data: bytes) -> None:
        try:
            plaintext, to_send, closed = self._session.receive(data)
        except TlsHandshakeError as exc:
            self._handshake_failed(exc)
            return
        except TlsError as exc:
            self._fatal(exc)
            return
        raw = self._raw
        assert raw is not None
        if to_send:
            raw.write(to_send)
        if self._state != OPEN:
            if self._state == CLOSED or not self._session.established:
                return
            self._established()
            if self._state != OPEN:
                return
        if plaintext:
            if self._app_paused:
                if self._backlog is None:
                    self._backlog = [plaintext]
                else:
                    self._backlog.append(plaintext)
            else:
                self._app.data_received(plaintext)  # type: ignore[union-attr]
        if closed:
            self._peer_closed(clean=True)

    def eof_received(self) -> bool | None:
        if self._state == HANDSHAKING:
            try:
                self._session.receive_eof()
            except TlsHandshakeError as exc:
                self._handshake_failed(exc)
            return False
        if self._state == CLOSED:
            return False
        try:
            self._session.receive_eof()
        except TlsError:
            pass
        return self._deliver_eof()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        self._settle()
        state = self._state
        self._state = CLOSED
        if state == HANDSHAKING:
            err = TlsHandshakeError(
                "peer closed connection in SSL handshake" if exc is None else f"connection lost: {exc}",
                kind="eof",
            )
            self._report_handshake_error(err)
        app = self._app
        if app is not None and self._app_transport is not None:
            self._app_transport._closing = True
            self._app = None
            app.connection_lost(exc if exc is not None else self._error)
        self._raw = None
        # No reference cycle may outlive the socket (the app transport points back here, OpenSSL's app data at the
        # session): reference counting then frees the whole connection when the app lets go of its transport.
        self._app_transport = None
        self._session.release()

    def pause_writing(self) -> None:
        app = self._app
        if app is not None:
            app.pause_writing()

    def resume_writing(self) -> None:
        app = self._app
        if app is not None:
            app.resume_writing()

    # -- internals --------------------------------------------------------------------------------------------

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _established(self) -> None:
        self._cancel_timer()
        raw = self._raw
        assert raw is not None
        self._state = OPEN
        transport = self._app_transport = TlsTransport(self, raw, self._session)
        app = self._app = cast(asyncio.Protocol, self._app_factory())
        app.connection_made(transport)
        self._settle()
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _settle(self) -> None:
        """``on_settled``, once: the handshake is over (the app has its transport) or the connection is gone."""
        hook = self._on_settled
        if hook is not None:
            self._on_settled = None
            hook()

    def _report_handshake_error(self, exc: TlsHandshakeError) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_exception(exc)
            return
        handler = self._on_handshake_error
        if handler is not None:
            raw = self._raw
            handler(exc, raw.get_extra_info("peername") if raw is not None else None)

    def _handshake_failed(self, exc: TlsHandshakeError) -> None:
        if self._state == CLOSED:
            return
        self._cancel_timer()
        self._state = CLOSED
        raw = self._raw
        if raw is not None and not raw.is_closing():
            if exc.to_send:
                raw.write(exc.to_send)
            if exc.kind == "timeout":
                raw.abort()
            else:
                raw.close()
        self._report_handshake_error(exc)

    def handshake_timed_out(self) -> None:
        """The handshake timer fired (ours, or the adopted ``handshake_timer``): abort and report, once."""
        self._timer = None
        if self._state == HANDSHAKING:
            self._handshake_failed(TlsHandshakeError("SSL handshaking timed out", kind="timeout"))

    def _fatal(self, exc: TlsError) -> None:
        """An established connection broke (bad record, alert): write the alert, close, report to the app."""
        if self._state == CLOSED:
            return
        self._state = CLOSED
        self._error = exc
        raw = self._raw
        if self._app_transport is not None:
            self._app_transport._closing = True
        if raw is not None and not raw.is_closing():
            if exc.to_send:
                raw.write(exc.to_send)
            raw.close()
        # connection_lost follows from the socket and carries ``exc`` to the app, as sslproto's _fatal_error.

    def _peer_closed(self, clean: bool) -> None:
        """A close_notify arrived: deliver EOF; unless the app keeps its side open, answer and close."""
        keep_open = self._deliver_eof()
        if not keep_open and self._app_transport is not None:
            self._app_transport.close()

    def _deliver_eof(self) -> bool:
        if self._app_paused:
            self._eof_pending = True
            return True
        app = self._app
        if app is None:
            return False
        return bool(app.eof_received())

    def _pause_reading(self) -> None:
        if self._app_paused or self._state != OPEN:
            return
        self._app_paused = True
        raw = self._raw
        if raw is not None and raw.is_reading():
            raw.pause_reading()

    def _resume_reading(self) -> None:
        if not self._app_paused:
            return
        self._app_paused = False
        if self._backlog is not None or self._eof_pending:
            assert self._loop is not None
            self._loop.call_soon(self._flush_backlog)
        raw = self._raw
        if raw is not None and self._state == OPEN and not raw.is_closing() and not self._eof_pending:
            raw.resume_reading()

    def _flush_backlog(self) -> None:
        """Deliver what was decrypted while the app had paused reading (and a deferred EOF)."""
        while self._backlog and not self._app_paused and self._app is not None:
            data = b"".join(self._backlog)
            self._backlog = None
            self._app.data_received(data)
        if self._backlog == []:
            self._backlog = None
        if self._eof_pending and not self._app_paused and self._app is not None:
            self._eof_pending = False
            keep_open = bool(self._app.eof_received())
            if not keep_open and self._app_transport is not None:
                self._app_transport.close()


def create_tls_server_protocol(
    context: SSL.Context | Callable[[], SSL.Context],
    app_protocol_factory: Callable[[], asyncio.BaseProtocol],
    *,
    handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
    on_handshake_error: HandshakeErrorHandler | None = None,
) -> Callable[[], TlsProtocol]:
    """A protocol factory for ``loop.create_server``: TLS server side in front of ``app_protocol_factory``.

    Args:
        context: the default ``SSL.Context`` (its servername callback picks per-SNI contexts), or a callable
            returning the current one (so a new snapshot's context applies to new connections only).
        app_protocol_factory: the HTTP protocol; created only after a successful handshake.
        handshake_timeout: seconds allowed for the handshake.
        on_handshake_error: ``(TlsHandshakeError, peername)`` for each failure (error-log line, metrics).
    """
    if isinstance(context, SSL.Context):
        fixed = context

        def factory() -> TlsProtocol:
            return TlsProtocol(
                fixed,
                app_protocol_factory,
                server_side=True,
                handshake_timeout=handshake_timeout,
                on_handshake_error=on_handshake_error,
            )

        return factory

    context_factory = context

    def dynamic_factory() -> TlsProtocol:
        return TlsProtocol(
            context_factory(),
            app_protocol_factory,
            server_side=True,
            handshake_timeout=handshake_timeout,
            on_handshake_error=on_handshake_error,
        )

    return dynamic_factory


async def open_tls_connection(
    loop: asyncio.AbstractEventLoop,
    host: str,
    port: int,
    context: SSL.Context,
    server_hostname: str | None,
    app_protocol_factory: Callable[[], asyncio.BaseProtocol],
    timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
    *,
    alpn_protocols: Sequence[str] | None = None,
    verify: bool = False,
    verify_hostname: str | None = None,
    ssl_session: SSL.Session | None = None,
    local_addr: tuple[str, int] | None = None,
) -> tuple[TlsTransport, asyncio.Protocol]:
    """Connect to an upstream and complete the TLS handshake (client side).

    ``timeout`` bounds the TCP connect and the handshake together (nginx's ``proxy_connect_timeout`` covers
    both). ``verify``/``verify_hostname`` apply nginx's post-handshake checks; the context's verify callback
    must be ``verify_codes.RECORD_AND_ACCEPT`` for the codes to be recorded.

    Returns:
        ``(transport, app_protocol)`` once the app protocol has seen ``connection_made``.

    Raises:
        TlsHandshakeError: the handshake failed (``verify_code``/``verify_depth`` for verification, ``kind``
            ``"timeout"`` when the handshake did not finish in time).
        OSError: the TCP connection failed (``TimeoutError`` when the connect itself timed out).
    """
    deadline = None if timeout is None else loop.time() + timeout
    waiter: asyncio.Future[None] = loop.create_future()
    protocol = TlsProtocol(
        context,
        app_protocol_factory,
        server_side=False,
        server_hostname=server_hostname,
        alpn_protocols=alpn_protocols,
        verify=verify,
        verify_hostname=verify_hostname,
        ssl_session=ssl_session,
        handshake_timeout=None,
        waiter=waiter,
    )
    async with asyncio.timeout_at(deadline):
        raw, _ = await loop.create_connection(lambda: protocol, host, port, local_addr=local_addr)
    try:
        async with asyncio.timeout_at(deadline):
            await waiter
    except TimeoutError:
        raw.abort()
        raise TlsHandshakeError("SSL handshaking to upstream timed out", kind="timeout") from None
    except BaseException:
        raw.abort()
        raise
    transport, app = protocol.app_transport, protocol.app_protocol
    assert transport is not None and app is not None
    return transport, app
