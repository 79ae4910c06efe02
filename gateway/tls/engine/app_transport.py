"""The transport the app protocol (HTTP) writes to, over one TLS session: ``TlsTransport``.

It encrypts each write at once and hands the ciphertext to the socket transport; reading, pausing and the
connection's state belong to its owner, the raw-socket ``TlsProtocol`` (``transport.py``), reached through the
small ``TransportOwner`` Protocol so that this module does not import the one that creates it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any, Protocol, cast

from OpenSSL import SSL

from gateway.tls.engine.errors import TlsError
from gateway.tls.engine.session import TlsSession

__all__ = ["CLOSED", "HANDSHAKING", "OPEN", "TlsTransport", "TransportOwner"]

#: the connection's state, kept by the owner: handshaking, open to the app, closed
HANDSHAKING, OPEN, CLOSED = 0, 1, 2


class TransportOwner(Protocol):
    """What ``TlsTransport`` reads and drives of the ``TlsProtocol`` that created it."""

    _state: int
    _app: asyncio.Protocol | None
    _app_paused: bool

    def _fatal(self, exc: TlsError) -> None: ...

    def _pause_reading(self) -> None: ...

    def _resume_reading(self) -> None: ...


class TlsTransport(asyncio.Transport):
    """The transport the app protocol writes to: encrypts and hands the ciphertext to the socket at once."""

    __slots__ = ("_closing", "_protocol", "_raw", "_session", "_tls")

    def __init__(self, tls: TransportOwner, raw: asyncio.Transport, session: TlsSession) -> None:
        super().__init__()
        self._tls = tls
        self._raw = raw
        self._session = session
        self._closing = False

    # -- writing ----------------------------------------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Encrypt and write; silently dropped after ``close()`` (asyncio's sslproto does the same)."""
        if self._closing or not data:
            return
        try:
            ciphertext = self._session.send(data)
        except TlsError as exc:
            self._tls._fatal(exc)
            return
        self._raw.write(ciphertext)

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        """One encryption and one socket write for the whole batch."""
        if self._closing:
            return
        # a list (the proxy's case) skips the ABC instance check
        buffers = (
            list_of_data if type(list_of_data) is list or isinstance(list_of_data, Sequence) else list(list_of_data)
        )
        if not buffers:
            return
        try:
            ciphertext = self._session.send_many(buffers)
        except TlsError as exc:
            self._tls._fatal(exc)
            return
        self._raw.write(ciphertext)

    def close_with(self, buffers: Sequence[bytes | bytearray | memoryview]) -> None:
        """``writelines(buffers)`` then ``close()``, with the last bytes and the close_notify in one socket write.

        A connection that ends after its response (``Connection: close``) would otherwise pay a second socket
        send, and a second read of the outgoing BIO, for the 24-byte close_notify record alone.
        """
        if self._closing:
            return
        if not buffers:
            self.close()
            return
        try:
            ciphertext = self._session.send_and_close(buffers[0] if len(buffers) == 1 else b"".join(buffers))
        except TlsError as exc:
            self._tls._fatal(exc)
            return
        self._closing = True
        self._tls._state = CLOSED
        raw = self._raw
        if ciphertext and not raw.is_closing():
            raw.write(ciphertext)
        raw.close()

    def can_write_eof(self) -> bool:
        """TLS has no half-close of our own writing short of close_notify, which is ``close()``."""
        return False

    def write_eof(self) -> None:
        raise NotImplementedError("TLS transports cannot write EOF; use close()")

    def get_write_buffer_size(self) -> int:
        """Ciphertext waiting in the socket buffer (plaintext is encrypted as soon as it is written)."""
        return self._raw.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._raw.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._raw.set_write_buffer_limits(high, low)

    # -- reading ----------------------------------------------------------------------------------------------

    def pause_reading(self) -> None:
        self._tls._pause_reading()

    def resume_reading(self) -> None:
        self._tls._resume_reading()

    def is_reading(self) -> bool:
        return not self._tls._app_paused and not self._closing and self._tls._state == OPEN

    # -- closing ----------------------------------------------------------------------------------------------

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        """Send close_notify, then close the socket once everything written so far has been flushed."""
        if self._closing:
            return
        self._closing = True
        self._tls._state = CLOSED
        ciphertext = self._session.close()
        raw = self._raw
        if ciphertext and not raw.is_closing():
            raw.write(ciphertext)
        raw.close()

    def abort(self) -> None:
        """Close the socket at once, discarding buffered data; no close_notify."""
        self._closing = True
        self._tls._state = CLOSED
        self._raw.abort()

    # -- protocol and extras ----------------------------------------------------------------------------------

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._tls._app = cast(asyncio.Protocol, protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._tls._app  # type: ignore[return-value]

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """``tls`` -> ``TlsInfo``; ``ssl_object`` -> the same ``TlsInfo`` (peer chain, cipher, ...);
        ``peercert`` -> the peer's leaf (``cryptography``), ``peercert_chain`` -> the chain, leaf first;
        ``cipher``/``version``/``sni``/``alpn``; anything else (``peername``, ``sockname``, ``socket``) from the
        socket transport."""
        info = self._session.info
        if name in ("tls", "ssl_object"):
            return info
        if info is not None:
            if name == "peercert":
                return info.peer_certificate
            if name == "peercert_chain":
                return info.peer_chain
            if name in ("cipher", "version", "sni", "alpn"):
                return getattr(info, name)
        return self._raw.get_extra_info(name, default)

    def get_ssl_session(self) -> SSL.Session | None:
        """The current TLS session, to resume a later connection to the same peer identity (client side).

        Read it after the first response rather than right after the handshake: TLS 1.3 tickets arrive after the
        handshake and are processed with the first application data.
        """
        return self._session.get_ssl_session()

    def __repr__(self) -> str:
        return f"<TlsTransport {'closing' if self._closing else 'open'} {self._raw.get_extra_info('peername')}>"
