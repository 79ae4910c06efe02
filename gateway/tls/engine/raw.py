"""Handshake steps and the established data path: OpenSSL's ``SSL_do_handshake``/``SSL_read``/``SSL_write``/``BIO_*``
called on pyOpenSSL's handles.

Why: pyOpenSSL's public ``recv``/``send``/``bio_read``/``bio_write`` cost more Python per call than the record work
itself (a fresh buffer per ``recv``, a helper check per call, an exception for "no more data"); the measured floor
(docs/architecture.md, "Measured facts") puts a minimal proxy at 0.47 x nginx with the public API and 0.87-1.0 with
direct calls. The handshake's configuration and callbacks stay on pyOpenSSL's public API (SNI, verify, client
certificates); its steps are one ``SSL_do_handshake`` each here (``RawChannel.handshake``), so that "want more bytes"
is a return value and not pyOpenSSL's ``WantReadError`` (an exception per flight), and every other outcome is
pyOpenSSL's own (``_raise_ssl_error``). Application data, once a session is established, comes through here too.

This module is the only one allowed to touch pyOpenSSL's internals (``OpenSSL.SSL._lib``, ``_ffi``,
``Connection._ssl``/``_into_ssl``/``_from_ssl``/``_raise_ssl_error``; ``tests/unit/tls/engine/test_raw.py`` checks
that no other module does). Any pyOpenSSL release may change them, so ``pyproject.toml`` pins the versions CI tests,
and ``check_internals`` runs at import: a missing symbol stops start-up with ``RawEngineUnavailable`` naming it,
never a silent fallback to the slow path.

Safety: no Python callback may run inside a raw ``SSL_read`` (pyOpenSSL re-raises a callback's exception only from
its own wrappers). Handshake callbacks are the only ones the gateway installs; ``OP_NO_RENEGOTIATION`` (set on every
context, and on every connection by ``TlsSession``) keeps a peer from starting a new handshake after the first, and
TLS 1.3 post-handshake authentication is never enabled. Errors other than "want more data" are turned into the
very exception pyOpenSSL's public call would raise (``_raise_ssl_error``), so the callers' error handling and the
error texts (``errors.openssl_reason``) stay the same.

The loop is single-threaded: one read buffer and one drain buffer serve every connection (each call copies what it
returns out of them before the next call can run).
"""

from __future__ import annotations

from typing import Any, Final

from OpenSSL import SSL

from gateway.tls.engine.errors import RawEngineUnavailable

__all__ = [
    "OP_NO_RENEGOTIATION",
    "REQUIRED_CONNECTION_ATTRIBUTES",
    "REQUIRED_LIB_SYMBOLS",
    "RawChannel",
    "RawEngineUnavailable",
    "check_internals",
    "renegotiation_disabled",
]


#: what the data path calls on ``OpenSSL.SSL._lib`` (functions and constants)
REQUIRED_LIB_SYMBOLS: Final = (
    "SSL_read",
    "SSL_write",
    "SSL_do_handshake",
    "SSL_session_reused",
    "SSL_get_error",
    "SSL_pending",
    "SSL_get_options",
    "BIO_read",
    "BIO_write",
    "BIO_get_mem_data",
    "ERR_clear_error",
    "SSL_ERROR_WANT_READ",
    "SSL_ERROR_ZERO_RETURN",
    "SSL_OP_NO_RENEGOTIATION",
)
#: what the data path reads on every ``SSL.Connection``
REQUIRED_CONNECTION_ATTRIBUTES: Final = ("_ssl", "_into_ssl", "_from_ssl", "_raise_ssl_error")


def check_internals(ssl_module: Any = SSL) -> tuple[Any, Any]:
    """Return ``(_lib, _ffi)`` after checking every internal the data path uses; raise naming what is missing.

    A throwaway connection is built to check the per-connection attributes, so a rename is caught here, at import,
    and not on the first request.
    """
    lib = getattr(ssl_module, "_lib", None)
    ffi = getattr(ssl_module, "_ffi", None)
    missing = [name for name, value in (("_lib", lib), ("_ffi", ffi)) if value is None]
    if lib is not None:
        missing += [f"_lib.{name}" for name in REQUIRED_LIB_SYMBOLS if not hasattr(lib, name)]
    try:
        probe = ssl_module.Connection(ssl_module.Context(ssl_module.TLS_METHOD), None)
    except Exception as exc:  # the check must name the problem, whatever it is
        missing.append(f"Connection() ({exc})")
    else:
        missing += [f"Connection.{name}" for name in REQUIRED_CONNECTION_ATTRIBUTES if not hasattr(probe, name)]
    if missing:
        version = getattr(ssl_module, "__version__", None) or _installed_version()
        raise RawEngineUnavailable(
            f"pyOpenSSL {version} lacks what the TLS data path needs: {', '.join(missing)}; "
            "install the version range pinned in pyproject.toml"
        )
    return lib, ffi


def _installed_version() -> str:
    try:
        from importlib.metadata import version

        return version("pyOpenSSL")
    except Exception:
        return "(unknown version)"


_lib, _ffi = check_internals()

OP_NO_RENEGOTIATION: Final[int] = _lib.SSL_OP_NO_RENEGOTIATION

# One SSL_read returns at most one record (16 KiB); the drain buffer holds a typical response's ciphertext at once.
# Every name below is Final: compiled (gateway/compiled.py), a Final global is a C static, any other a dict read.
_READ_SIZE: Final = 65536
_DRAIN_SIZE: Final = 262144
_RBUF: Final[Any] = _ffi.new("char[]", _READ_SIZE)
_RVIEW: Final[Any] = _ffi.buffer(_RBUF)
_WBUF: Final[Any] = _ffi.new("char[]", _DRAIN_SIZE)
_WVIEW: Final[Any] = _ffi.buffer(_WBUF)
_NULL: Final[Any] = _ffi.NULL
_SSL_do_handshake: Final[Any] = _lib.SSL_do_handshake
_SSL_session_reused: Final[Any] = _lib.SSL_session_reused
_SSL_read: Final[Any] = _lib.SSL_read
_SSL_write: Final[Any] = _lib.SSL_write
_SSL_get_error: Final[Any] = _lib.SSL_get_error
_SSL_pending: Final[Any] = _lib.SSL_pending
_BIO_read: Final[Any] = _lib.BIO_read
_BIO_write: Final[Any] = _lib.BIO_write
_BIO_pending: Final[Any] = _lib.BIO_get_mem_data  # a memory BIO's byte count (BIO_ctrl_pending is not bound)
_WANT_READ: Final[int] = _lib.SSL_ERROR_WANT_READ
_ZERO_RETURN: Final[int] = _lib.SSL_ERROR_ZERO_RETURN
_from_buffer: Final[Any] = _ffi.from_buffer


def renegotiation_disabled(conn: SSL.Connection) -> bool:
    """Whether ``OP_NO_RENEGOTIATION`` is in force on this connection (the tests check every context kind)."""
    return bool(_lib.SSL_get_options(conn._ssl) & OP_NO_RENEGOTIATION)


class RawChannel:
    """One connection's data path: its ``SSL`` handle and memory BIOs, read from pyOpenSSL once, at creation.

    Why a class: the session keeps one and calls its methods, so a request reads the three handles from fields
    instead of from the pyOpenSSL ``Connection`` by name (about a hundred instructions a read, six per request and
    direction). ``conn`` stays for the one thing only pyOpenSSL does: turning a failed call into its exception.
    """

    __slots__ = ("conn", "rbio", "ssl", "wbio")

    def __init__(self, conn: SSL.Connection) -> None:
        self.conn = conn
        self.ssl: Any = conn._ssl
        self.rbio: Any = conn._into_ssl
        self.wbio: Any = conn._from_ssl

    def error(self, result: int) -> SSL.Error:
        """The exception pyOpenSSL's public call would have raised for ``result`` (its texts, its classes)."""
        conn = self.conn
        try:
            conn._raise_ssl_error(self.ssl, result)
        except SSL.Error as exc:
            return exc
        return SSL.Error([("", "", "unknown TLS error")])

    def handshake(self) -> bool:
        """One handshake step on what the incoming BIO holds: True once complete, False while OpenSSL wants more.

        Any other outcome raises what pyOpenSSL's ``do_handshake`` raises, through its own ``_raise_ssl_error``,
        which also re-raises an exception a callback left in the context's helpers. On success that check runs
        too (once per handshake); a "want more" step skips it: a callback that failed makes OpenSSL fail the
        handshake (verify, ALPN: a fatal alert), so its exception surfaces at that step, as with pyOpenSSL.
        """
        ssl = self.ssl
        result: int = _SSL_do_handshake(ssl)
        if result != 1 and _SSL_get_error(ssl, result) == _WANT_READ:
            return False
        self.conn._raise_ssl_error(ssl, result)
        return True

    def session_reused(self) -> bool:
        """Whether the completed handshake resumed a session (``SSL_session_reused``: a TLS 1.3 PSK accepted, or a
        TLS 1.2 abbreviated handshake), which pyOpenSSL does not expose."""
        return bool(_SSL_session_reused(self.ssl))

    def feed(self, data: bytes) -> None:
        """Ciphertext from the socket into the incoming memory BIO (it grows: every byte is taken)."""
        _BIO_write(self.rbio, data, len(data))

    def read_all(self) -> tuple[bytes, bool, SSL.Error | None]:
        """Decrypt everything the incoming BIO holds: ``(plaintext, close_notify_received, error)``.

        Stops without a failing call when OpenSSL holds no more plaintext and the BIO no more ciphertext (the common
        case: one read per record and no "want read" round trip).
        """
        ssl = self.ssl
        rbio = self.rbio
        first = b""
        parts: list[bytes] | None = None
        while True:
            n: int = _SSL_read(ssl, _RBUF, _READ_SIZE)
            if n > 0:
                chunk: bytes = _RVIEW[:n]
                if not first:
                    first = chunk
                elif parts is None:
                    parts = [first, chunk]
                else:
                    parts.append(chunk)
                if not _SSL_pending(ssl) and not _BIO_pending(rbio, _NULL):
                    break
                continue
            code: int = _SSL_get_error(ssl, n)
            if code == _WANT_READ:
                break
            if code == _ZERO_RETURN:
                return (b"".join(parts) if parts is not None else first), True, None
            return (b"".join(parts) if parts is not None else first), False, self.error(n)
        return (b"".join(parts) if parts is not None else first), False, None

    def receive(self, data: bytes) -> tuple[bytes, bytes, bool]:
        """An established session's whole receive in one call: ``data`` into the incoming BIO, all the plaintext
        out, then what OpenSSL wrote meanwhile (key-update answers, alerts): ``(plaintext, to_send, closed)``.

        The common case - one record in, its plaintext out, nothing to answer - is three OpenSSL calls and no loop:
        ``SSL_read`` returns at most one record and our buffer is larger than any record's plaintext (16 KiB), so
        once the incoming BIO is empty OpenSSL holds nothing more (``SSL_pending`` would be 0) and no call has to
        fail to say so. Anything else goes through ``read_all``'s loop.

        Raises:
            SSL.Error: what pyOpenSSL's ``recv`` would have raised (the caller drains the alert OpenSSL wrote).
        """
        rbio = self.rbio
        _BIO_write(rbio, data, len(data))
        n: int = _SSL_read(self.ssl, _RBUF, _READ_SIZE)
        if n > 0 and not _BIO_pending(rbio, _NULL):
            plaintext: bytes = _RVIEW[:n]
            m: int = _BIO_read(self.wbio, _WBUF, _DRAIN_SIZE)
            if m <= 0:
                return plaintext, b"", False
            return plaintext, (_WVIEW[:m] + self.drain() if m == _DRAIN_SIZE else _WVIEW[:m]), False
        return self._receive_rest(n)

    def _receive_rest(self, n: int) -> tuple[bytes, bytes, bool]:
        """``receive`` past its first ``SSL_read`` (which returned ``n``): several records, none, the end, an error."""
        parts: list[bytes] = []
        if n > 0:
            parts.append(_RVIEW[:n])
        else:
            code: int = _SSL_get_error(self.ssl, n)
            if code == _ZERO_RETURN:
                return b"", self.drain(), True
            if code != _WANT_READ:
                raise self.error(n)
            return b"", self.drain(), False
        plaintext, closed, error = self.read_all()
        if error is not None:
            raise error
        if plaintext:
            parts.append(plaintext)
        return b"".join(parts), self.drain(), closed

    def encrypt(self, data: bytes | bytearray | memoryview) -> bytes:
        """An established session's whole send in one call: encrypt ``data``, return the records to write.

        Raises:
            SSL.Error: what pyOpenSSL's ``send`` would have raised (the caller drains the alert OpenSSL wrote).
        """
        if type(data) is bytes and data:
            size = len(data)
            n: int = _SSL_write(self.ssl, data, size)
            if n != size:
                if n <= 0:
                    raise self.error(n)
                error = self._write_rest(_from_buffer(data), n, size)
                if error is not None:
                    raise error
        else:
            error = self.write_all(data)
            if error is not None:
                raise error
        m: int = _BIO_read(self.wbio, _WBUF, _DRAIN_SIZE)
        if m <= 0:
            return b""
        return _WVIEW[:m] + self.drain() if m == _DRAIN_SIZE else _WVIEW[:m]

    def write_all(self, data: bytes | bytearray | memoryview) -> SSL.Error | None:
        """Encrypt all of ``data`` into the outgoing BIO (one ``SSL_write`` per record with partial writes on)."""
        if type(data) is bytes:
            size = len(data)
            if not size:  # SSL_write of nothing is an error to OpenSSL, a no-op here
                return None
            n: int = _SSL_write(self.ssl, data, size)
            if n == size:
                return None
            if n <= 0:
                return self.error(n)
            return self._write_rest(_from_buffer(data), n, size)
        with _from_buffer(data) as view:
            size = len(view)
            return self._write_rest(view, 0, size) if size else None

    def _write_rest(self, view: Any, done: int, size: int) -> SSL.Error | None:
        ssl = self.ssl
        while done < size:
            n: int = _SSL_write(ssl, view + done, size - done)
            if n <= 0:
                return self.error(n)
            done += n
        return None

    def drain(self) -> bytes:
        """Everything in the outgoing memory BIO (b"" when empty): records to write to the socket."""
        wbio = self.wbio
        n: int = _BIO_read(wbio, _WBUF, _DRAIN_SIZE)
        if n <= 0:
            return b""
        first: bytes = _WVIEW[:n]
        if n < _DRAIN_SIZE:
            return first
        parts = [first]
        while True:
            n = _BIO_read(wbio, _WBUF, _DRAIN_SIZE)
            if n <= 0:
                break
            parts.append(_WVIEW[:n])
            if n < _DRAIN_SIZE:
                break
        return b"".join(parts)
