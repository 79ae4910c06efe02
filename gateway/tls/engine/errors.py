"""The TLS engine's errors, after h11: what the peer did wrong, what the caller did wrong, how a handshake failed.

``TlsRemoteError``: the peer sent something OpenSSL rejects (every handshake failure is its ``TlsHandshakeError``,
with a ``kind`` the layers above map to nginx's wording); ``TlsLocalError``: the caller misused the session. Each
carries ``to_send``, the bytes still worth writing before closing (an alert).
"""

from __future__ import annotations

import enum

from OpenSSL import SSL

from gateway.tls.engine.verify_codes import verify_error_text

__all__ = [
    "RawEngineUnavailable",
    "ReasonStyle",
    "TlsError",
    "TlsHandshakeError",
    "TlsLocalError",
    "TlsRemoteError",
    "error_queue",
    "openssl_reason",
]


class RawEngineUnavailable(RuntimeError):
    """The installed pyOpenSSL lacks an internal the data path needs (``raw.check_internals``): a start-up error,
    with the names. Defined here, not in the compiled ``raw``: mypyc cannot subclass ``RuntimeError``."""


class TlsError(Exception):
    """Base of the session's errors. ``to_send`` holds bytes still worth writing before closing (an alert)."""

    def __init__(self, reason: str, *, to_send: bytes = b"") -> None:
        super().__init__(reason)
        self.reason = reason
        self.to_send = to_send


class TlsLocalError(TlsError):
    """The caller used the session wrongly (send before the handshake, after close, after an error)."""


class TlsRemoteError(TlsError):
    """The peer sent something OpenSSL rejected (bad record, fatal alert, unexpected message)."""


class TlsHandshakeError(TlsRemoteError):
    """The handshake did not produce a usable connection.

    Attributes:
        kind: ``"protocol"`` (OpenSSL rejected the exchange; ``reason`` is OpenSSL's short reason, for logs
            only), ``"verify"`` (certificate verification; ``verify_code``/``verify_depth`` set),
            ``"hostname"`` (the certificate does not match ``verify_hostname``), ``"eof"`` (the peer closed
            mid-handshake), ``"timeout"`` (set by the transport).
        verify_code: the OpenSSL ``X509_V_ERR_*`` code reported (see ``verify_codes.reported_verify_error``).
        verify_depth: the chain depth of that error.
    """

    def __init__(
        self,
        reason: str,
        *,
        kind: str = "protocol",
        verify_code: int | None = None,
        verify_depth: int | None = None,
        to_send: bytes = b"",
    ) -> None:
        super().__init__(reason, to_send=to_send)
        self.kind = kind
        self.verify_code = verify_code
        self.verify_depth = verify_depth

    @classmethod
    def verify_failed(cls, code: int, depth: int, to_send: bytes, prefix: str = "") -> TlsHandshakeError:
        """A verify failure in nginx's words (``prefix``: ``"upstream SSL "`` for the upstream side's check)."""
        return cls(
            f"{prefix}certificate verify error: ({code}:{verify_error_text(code)})",
            kind="verify",
            verify_code=code,
            verify_depth=depth,
            to_send=to_send,
        )

    @property
    def verify_text(self) -> str | None:
        """nginx's parenthesised form, ``21:unable to verify the first certificate``, for verify failures."""
        if self.verify_code is None:
            return None
        return f"{self.verify_code}:{verify_error_text(self.verify_code)}"


class ReasonStyle(enum.Enum):
    """How much of OpenSSL's error queue a text shows: one reader of the queue, the three wordings that use it."""

    LAST = enum.auto()
    """The last reason only (``wrong version number``): log lines of a failed handshake or record."""
    REASONS = enum.auto()
    """Every reason, ``", "``-joined: nginx's certificate loading lines (``could not parse PEM certificate: ...``)."""
    QUEUE = enum.auto()
    """Every ``lib:func:reason``, ``"; "``-joined: Kong's entity validation texts (``x509.new: ...``)."""


def error_queue(exc: BaseException) -> list[tuple[str, ...]]:
    """The ``(lib, func, reason)`` entries pyOpenSSL copied from OpenSSL's error queue into ``args[0]``, oldest
    first (empty for anything else)."""
    args = exc.args
    if args and isinstance(args[0], list):
        return [tuple(str(part) for part in item) for item in args[0] if isinstance(item, tuple) and item]
    return []


def openssl_reason(exc: BaseException, style: ReasonStyle = ReasonStyle.LAST) -> str:
    """OpenSSL's reason for a pyOpenSSL error (``SSL.Error``, ``crypto.Error``) in the wording ``style`` names.

    For messages and log lines only, never compared (see style lesson 5): the texts differ between OpenSSL builds.
    """
    if isinstance(exc, SSL.SysCallError):
        return str(exc.args[1]) if len(exc.args) > 1 else "syscall error"
    queue = error_queue(exc)
    if queue:
        if style is ReasonStyle.LAST:
            return queue[-1][-1] or "TLS error"
        if style is ReasonStyle.REASONS:
            return ", ".join(item[-1] for item in queue)
        return "; ".join(":".join(part for part in item if part) for item in queue)
    return str(exc) or type(exc).__name__
