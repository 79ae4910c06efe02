"""Sans-I/O TLS: one ``OpenSSL.SSL.Connection`` over memory BIOs, bytes in, bytes out.

Theory of operation
-------------------
A ``TlsSession`` never touches a socket or an event loop. The owner (``transport.TlsProtocol``, or a test)
moves bytes:

- ``start()`` (client side) returns the ClientHello to write;
- ``receive(ciphertext)`` returns ``(plaintext, to_send, closed)``: decrypted application data (batched into
  one ``bytes``), bytes that must be written to the peer (handshake flights, alerts, key updates), and whether
  the peer has finished (close_notify received);
- ``receive_eof()`` tells the session that the socket reached EOF;
- ``send(plaintext)`` returns the ciphertext for it; ``close()`` returns a close_notify.

Rule 1: the outgoing BIO is drained after every handshake step, read, write and ``shutdown`` (OpenSSL may
have produced bytes even while reading: tickets, alerts, key updates). Rule 2: reading is repeated until the
incoming BIO is exhausted, so one ``receive`` call hands up everything that arrived.

The handshake's configuration, ``shutdown`` and every callback stay on pyOpenSSL's public API. Handshake steps,
application data and every BIO transfer go through the session's ``raw.RawChannel`` (direct ``SSL_do_handshake``/
``SSL_read``/``SSL_write``/``BIO_*`` calls on pyOpenSSL's handles, read once per connection; no exception per call,
shared buffers): pyOpenSSL's per-call Python cost as much as the record work itself. Once established, ``receive``
and ``send`` are one call each into the channel (``receive``: feed, read, drain; ``encrypt``: write, drain). Both
modules are compiled (``gateway/compiled.py``).

Results are plain fields, set once when the handshake completes (``established``, ``sni``,
``verify_errors``, ``verify_code``/``verify_depth``, ``session_reused``), plus ``alpn``, ``cipher``,
``version`` and ``peer_chain``, read from OpenSSL on first access (fixed once the handshake is complete, and
not needed by most connections); ``info`` is an immutable ``TlsInfo`` (``info.py``) for the layers above, which
never see a pyOpenSSL object. ``session_reused`` is OpenSSL's ``SSL_session_reused`` (``RawChannel.session_reused``).

Releasing. OpenSSL's app data points back at the session (the callbacks need it), a reference cycle; the owner
calls ``release()`` once the socket is gone, which breaks it, so that reference counting frees the session and its
``SSL`` object at once: as cyclic garbage, every closed keepalive connection kept ~20 KiB of OpenSSL memory until
the collector's rare pass over its oldest generation (``benchmarks/SOAK.md``). ``TlsInfo`` adds no cycle.

Errors follow h11 (``errors.py``): ``TlsRemoteError`` (the peer sent something we reject, including every
handshake failure as ``TlsHandshakeError``) and ``TlsLocalError`` (the caller misused the session). After any
error the session is ``errored`` and every further call raises ``TlsLocalError`` at once.

Verification: the context's verify callback must be ``verify_codes.VerifyRecorder`` (``RECORD_AND_ACCEPT`` gives
nginx's behaviour), which records ``(code, depth)`` into this session (``Connection.set_app_data(self)``; SNI
callbacks can reach the session the same way). On the client side ``verify=True`` then fails the connection
*after* a completed handshake when the reported code is not 0, and ``verify_hostname`` runs ``check_host`` -
exactly nginx's ``SSL_get_verify_result`` + ``ngx_ssl_check_host`` sequence, which sends no close_notify.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography import x509 as cx509
from OpenSSL import SSL

from gateway.tls.engine.errors import TlsError, TlsHandshakeError, TlsLocalError, TlsRemoteError, openssl_reason
from gateway.tls.engine.hostnames import check_host
from gateway.tls.engine.info import TlsInfo, peer_chain_of
from gateway.tls.engine.raw import OP_NO_RENEGOTIATION, RawChannel
from gateway.tls.engine.verify_codes import reported_verify_error

__all__ = ["TlsSession"]

_HANDSHAKING, _ESTABLISHED, _CLOSED, _ERRORED = 0, 1, 2, 3


# ----------------------------------------------------------------------------------------------------------
# The session
# ----------------------------------------------------------------------------------------------------------


class TlsSession:
    """One TLS connection, either side, over memory BIOs. See the module docstring for the protocol.

    Args:
        context: the ``SSL.Context`` (server side: chosen by the caller, SNI callback installed on it).
        server_side: accept (True) or connect (False).
        server_hostname: client side, the SNI to send; ``None`` sends none (nginx sends none for IP literals).
        alpn_protocols: client side, the ALPN list to offer.
        verify: client side, fail after the handshake when the reported verify code is not 0.
        verify_hostname: client side, the name ``check_host`` must accept (nginx: only when verifying).
        ssl_session: client side, a session from ``get_ssl_session()`` to resume.
    """

    __slots__ = (
        "_conn",
        "_err",
        "_info",
        "_raw",
        "_state",
        "_verify",
        "_verify_hostname",
        "client_cert_request",
        "close_notify_received",
        "close_notify_sent",
        "server_certificate",
        "server_side",
        "session_reused",
        "sni",
        "verify_code",
        "verify_depth",
        "verify_errors",
        "verify_rejected",
    )

    def __init__(
        self,
        context: SSL.Context,
        *,
        server_side: bool,
        server_hostname: str | None = None,
        alpn_protocols: Sequence[str] | None = None,
        verify: bool = False,
        verify_hostname: str | None = None,
        ssl_session: SSL.Session | None = None,
    ) -> None:
        conn = SSL.Connection(context, None)
        # every context sets it too; here it also holds for a context built elsewhere (no callback in a raw read)
        conn.set_options(OP_NO_RENEGOTIATION)
        conn.set_app_data(self)
        self._conn = conn
        self._raw = RawChannel(conn)
        self.server_side = server_side
        self._state = _HANDSHAKING
        self._err: TlsError | None = None
        self._info: TlsInfo | None = None
        self._verify = verify
        self._verify_hostname = verify_hostname
        #: (code, depth) pairs recorded by ``verify_codes.VerifyRecorder``, in OpenSSL's order.
        self.verify_errors: list[tuple[int, int]] = []
        #: set by ``VerifyRecorder(accept=False)`` when it failed the handshake.
        self.verify_rejected = False
        self.verify_code = 0
        self.verify_depth = 0
        self.sni: str | None = None
        self.session_reused = False
        self.close_notify_received = False
        self.close_notify_sent = False
        #: server side, written through the connection's app data by the SNI callback: the ``CertificateEntry``
        #: it chose and the certificate-phase hook's client-certificate request (mtls-auth), or None
        self.server_certificate: object | None = None
        self.client_cert_request: object | None = None
        if server_side:
            conn.set_accept_state()
        else:
            if server_hostname:
                try:
                    raw_name = server_hostname.encode("ascii")
                except UnicodeEncodeError:
                    raw_name = server_hostname.encode("idna")
                conn.set_tlsext_host_name(raw_name)
                self.sni = server_hostname
            if alpn_protocols:
                conn.set_alpn_protos([p.encode("ascii") for p in alpn_protocols])
            if ssl_session is not None:
                conn.set_session(ssl_session)
            conn.set_connect_state()

    # -- state ------------------------------------------------------------------------------------------------

    @property
    def established(self) -> bool:
        """True once the handshake completed and passed the client-side checks (stays True after close)."""
        return self._info is not None

    @property
    def errored(self) -> bool:
        """True after any error; every further call raises ``TlsLocalError``."""
        return self._state == _ERRORED

    @property
    def alpn(self) -> str | None:
        """The negotiated ALPN protocol (None before the handshake completed or when none was agreed)."""
        return self._info.alpn if self._info is not None else None

    @property
    def cipher(self) -> str | None:
        """OpenSSL's name of the cipher suite (None before the handshake completed)."""
        return self._info.cipher if self._info is not None else None

    @property
    def version(self) -> str | None:
        """The protocol version name (None before the handshake completed)."""
        return self._info.version if self._info is not None else None

    @property
    def info(self) -> TlsInfo | None:
        """The immutable results, once established."""
        return self._info

    @property
    def peer_chain(self) -> list[cx509.Certificate]:
        """The chain the peer sent, leaf first, as ``cryptography`` certificates (converted once, on demand, once
        established; read afresh before that, for the client-side checks that decide whether it is)."""
        info = self._info
        return info.peer_chain if info is not None else peer_chain_of(self._conn, self.server_side)

    @property
    def ssl_connection(self) -> SSL.Connection:
        """The underlying pyOpenSSL connection: for SNI callbacks and tests only, never for the layers above."""
        return self._conn

    def get_ssl_session(self) -> SSL.Session | None:
        """The session to offer on the next connection to the same peer identity (upstream resumption)."""
        return self._conn.get_session()

    def _fail(self, exc: TlsError) -> TlsError:
        self._state = _ERRORED
        self._err = exc
        return exc

    def _check_usable(self) -> None:
        if self._state == _ERRORED:
            raise TlsLocalError(f"TLS session already failed: {self._err.reason if self._err else ''}")

    # -- byte pumps -------------------------------------------------------------------------------------------

    def start(self) -> bytes:
        """Client side: begin the handshake; returns the ClientHello to write."""
        self._check_usable()
        if self.server_side:
            raise TlsLocalError("start() is for the client side; the server waits for the ClientHello")
        return self._handshake()

    def receive(self, data: bytes) -> tuple[bytes, bytes, bool]:
        """Feed ciphertext from the peer.

        Args:
            data: bytes read from the socket; ``b""`` means EOF (see ``receive_eof``).

        Returns:
            ``(plaintext, to_send, closed)``: decrypted application data, bytes to write to the peer, and
            whether the peer has closed (close_notify, or EOF after the handshake).

        Raises:
            TlsHandshakeError: the handshake failed (``to_send`` carries the alert to write, if any).
            TlsRemoteError: an established connection received something invalid.
            TlsLocalError: the session had already failed.
        """
        if self._state == _ESTABLISHED and data:  # the data path: one call into ``raw``
            try:
                plaintext, out, closed = self._raw.receive(data)
            except SSL.Error as exc:
                raise self._fail(TlsRemoteError(openssl_reason(exc), to_send=self._raw.drain())) from None
            if closed:
                self._close_notify_received()
            return plaintext, out, closed
        if self._state != _ESTABLISHED:
            self._check_usable()
            if self._state == _CLOSED:
                return b"", b"", True
        if not data:
            return self.receive_eof()
        self._raw.feed(data)
        out = b""
        if self._state == _HANDSHAKING:
            out = self._handshake()
            if self._state == _HANDSHAKING:
                return b"", out, False
        return self._read_records(out)

    def _read_records(self, out: bytes) -> tuple[bytes, bytes, bool]:
        """``receive``'s second half: decrypt everything the incoming BIO holds, then drain what OpenSSL wrote
        meanwhile (tickets, key updates, our close_notify's answer); ``out`` is what the handshake wrote."""
        raw = self._raw
        plaintext, closed, error = raw.read_all()
        if error is not None:
            alert = raw.drain()
            raise self._fail(TlsRemoteError(openssl_reason(error), to_send=out + alert if out else alert))
        more = raw.drain()
        if more:
            out = out + more if out else more
        if closed:
            self._close_notify_received()
        return plaintext, out, closed

    def _close_notify_received(self) -> None:
        self.close_notify_received = True
        if self._info is not None:
            self._info.close_notify_received = True
        if self._state == _ESTABLISHED:
            self._state = _CLOSED

    def receive_eof(self) -> tuple[bytes, bytes, bool]:
        """The socket reached EOF without (or after) a close_notify.

        During the handshake this is a ``TlsHandshakeError(kind="eof")`` (nginx: "peer closed connection in SSL
        handshake"). Afterwards it is a normal end of stream, exactly as nginx (which treats OpenSSL 3's
        "unexpected eof while reading" as a clean close) and asyncio's sslproto (``eof_received`` then
        ``connection_lost(None)``) do; ``close_notify_received`` tells the two apart for diagnostics.
        """
        self._check_usable()
        if self._state == _HANDSHAKING:
            raise self._fail(TlsHandshakeError("peer closed connection in SSL handshake", kind="eof"))
        if self._state == _ESTABLISHED:
            self._state = _CLOSED
        return b"", b"", True

    def send(self, data: bytes | bytearray | memoryview) -> bytes:
        """Encrypt application data; returns the ciphertext to write.

        Raises:
            TlsLocalError: before the handshake, after ``close()`` or after an error.
        """
        if self._state != _ESTABLISHED or self.close_notify_sent:
            self._check_usable()
            if self._info is None or self.close_notify_sent:
                raise TlsLocalError("cannot send: TLS connection not established or already closing")
        try:
            return self._raw.encrypt(data)
        except SSL.Error as exc:
            raise self._fail(TlsRemoteError(openssl_reason(exc), to_send=self._raw.drain())) from None

    def send_many(self, buffers: Sequence[bytes | bytearray | memoryview]) -> bytes:
        """Encrypt several buffers at once (one join, so small pieces share records); returns the ciphertext."""
        if len(buffers) == 1:
            return self.send(buffers[0])
        return self.send(b"".join(buffers))

    def send_and_close(self, data: bytes | bytearray | memoryview) -> bytes:
        """``send(data)`` then ``close()`` with one drain: the ciphertext of ``data`` followed by the close_notify.

        For a connection that ends after its last write (``Connection: close``): both leave in one socket write
        instead of two, and the outgoing BIO is read once. Raises as ``send`` does.
        """
        if self._state != _ESTABLISHED or self.close_notify_sent or not data:
            ciphertext = self.send(data)
            return ciphertext + self.close()
        error = self._raw.write_all(data)
        if error is not None:
            raise self._fail(TlsRemoteError(openssl_reason(error), to_send=self._raw.drain())) from None
        self.close_notify_sent = True
        try:
            self._conn.shutdown()
        except SSL.Error:
            pass  # nothing more to add; what ``data`` produced still goes out, as with send() then close()
        return self._raw.drain()

    def close(self) -> bytes:
        """Start the TLS close: returns the close_notify to write (``b""`` if nothing can be sent any more).

        Reading stays possible, so the peer's own close_notify is still recognised.
        """
        if self._state == _ERRORED or self.close_notify_sent:
            return b""
        self.close_notify_sent = True
        if self._state == _HANDSHAKING:
            self._state = _CLOSED
            return b""
        try:
            self._conn.shutdown()
        except SSL.Error:
            return b""
        return self._raw.drain()

    def release(self) -> None:
        """The socket is gone: break the session's reference cycle (OpenSSL's app data, through which the SNI and
        verify callbacks reach the session, points back at it), so that reference counting frees the session and its
        ``SSL`` object once the layers above let go, instead of the collector's next pass over the generation
        long-lived connections end up in. Callbacks only run during a handshake; ``info`` stays readable."""
        self._conn.set_app_data(None)

    # -- handshake --------------------------------------------------------------------------------------------

    def _handshake(self) -> bytes:
        """One handshake step (``RawChannel.handshake``): the bytes to write, the results once it completes."""
        raw = self._raw
        try:
            done = raw.handshake()
        except SSL.Error as exc:
            alert = raw.drain()
            raise self._fail(self._handshake_error(exc, alert)) from None
        out = raw.drain()
        if not done:
            return out
        conn = self._conn
        self.session_reused = raw.session_reused()
        self._established()
        info = TlsInfo(conn, self.server_side, self.sni, tuple(self.verify_errors), self.verify_code, self.verify_depth)
        info.session_reused, info.close_notify_received = self.session_reused, self.close_notify_received
        info.server_certificate, info.client_cert_request = self.server_certificate, self.client_cert_request
        if not self.server_side:
            self._post_handshake_checks(out, info)
        self._info = info
        return out

    def _handshake_error(self, exc: SSL.Error, alert: bytes) -> TlsHandshakeError:
        if self.verify_rejected and self.verify_errors:
            self.verify_code, self.verify_depth = reported_verify_error(self.verify_errors)
            return TlsHandshakeError.verify_failed(self.verify_code, self.verify_depth, alert)
        return TlsHandshakeError(openssl_reason(exc), to_send=alert)

    def _established(self) -> None:
        conn = self._conn
        self._state = _ESTABLISHED
        if self.server_side:
            name = conn.get_servername()
            self.sni = name.decode("utf-8", "replace") if name else None
        if self.verify_errors:
            self.verify_code, self.verify_depth = reported_verify_error(self.verify_errors)

    def _post_handshake_checks(self, out: bytes, info: TlsInfo) -> None:
        """nginx's upstream checks after a completed handshake: verify result, then host name."""
        if self._verify and self.verify_code:
            code = self.verify_code
            raise self._fail(TlsHandshakeError.verify_failed(code, self.verify_depth, out, "upstream SSL "))
        name = self._verify_hostname
        if name is not None:
            chain = info.peer_chain
            if not chain or not check_host(chain[0], name):
                raise self._fail(
                    TlsHandshakeError(f'upstream SSL certificate does not match "{name}"', kind="hostname", to_send=out)
                )
