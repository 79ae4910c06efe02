"""How one try of an upstream request ends badly, as data: what failed, in which phase, and nginx's words for it.

nginx writes every upstream error line as ``<what failed> while <action>``, where the action is the phase the
upstream connection was in (``u->peer.log->action``): connecting, SSL handshaking, sending the request, reading
the response header, reading the body. So a failure here is a ``Kind`` (what happened to the connection) plus a
``Phase`` (where the exchange was), and the log line, the status and the retry policy are derived from those two,
in one place, instead of from strings spread over the exchange and the connection:

- ``TIMEOUT`` -> 504 and a *timeout* report to the passive health checker; everything else -> 502 and a *TCP
  failure* report (Kong's balancer phase).
- ``INVALID`` (a response head nginx would not accept) is never retried (``proxy_next_upstream error timeout``
  does not include ``invalid_header``); every other kind is, within the service's ``retries``.
- ``stale``: the peer closed or reset a *reused* keepalive connection before it answered anything. nginx does
  not count that try (``u->peer.cached``) and retries on a fresh connection.

The connection (``upstream.UpstreamConnection``) knows *what* happened; the exchange knows *where* it was (a
request still being written, a head awaited, a body streaming), so the exchange picks the phase.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass

from gateway.tls.engine.errors import TlsError

__all__ = ["Kind", "Phase", "UpstreamFailure", "from_exception"]


class Phase(enum.Enum):
    """nginx's upstream action strings: the value is what follows ``while`` in the error line."""

    CONNECTING = "connecting to upstream"
    HANDSHAKING = "SSL handshaking to upstream"
    SENDING = "sending request to upstream"
    READING_HEADER = "reading response header from upstream"
    READING_BODY = "reading upstream"


class Kind(enum.Enum):
    """What happened to the upstream connection."""

    #: a system call failed with ``errno`` (refused, reset, broken pipe); ``detail`` is ``strerror``
    ERROR = "error"
    #: the peer ended the stream: TCP FIN, or a TLS close_notify
    CLOSED = "closed"
    #: OpenSSL failed: during the handshake ``detail`` is nginx's whole reason (verify error, host mismatch...);
    #: afterwards it is OpenSSL's short reason of the broken record or alert
    TLS = "tls"
    #: connect, handshake, send or read timeout (which one is the phase)
    TIMEOUT = "timeout"
    #: a response nginx refuses (bad syntax, 101 to a request that did not ask to upgrade); ``detail`` is the text
    INVALID = "invalid"
    #: a connector raised something it should not have; ``detail`` describes it
    BUG = "bug"


#: the system call nginx names in an errno line, by phase
_SYSCALL = {Phase.CONNECTING: "connect()", Phase.SENDING: "writev()"}


@dataclass(frozen=True, slots=True)
class UpstreamFailure:
    """One failed try. ``level`` is the error-log level nginx uses for it."""

    kind: Kind
    phase: Phase
    errno: int = 0
    detail: str = ""
    level: str = "error"

    @property
    def timeout(self) -> bool:
        """Answered 504 (else 502), reported to the health checker as a timeout."""
        return self.kind is Kind.TIMEOUT

    @property
    def retryable(self) -> bool:
        return self.kind is not Kind.INVALID

    @property
    def stale(self) -> bool:
        """Could be a keepalive connection the peer had already closed: the try is not counted if it was reused."""
        return self.kind in (Kind.CLOSED, Kind.ERROR, Kind.TLS) and self.phase in (Phase.SENDING, Phase.READING_HEADER)

    @property
    def in_handshake(self) -> bool:
        """A failed upstream TLS handshake (its reason may be sent back in ``X-Gateway-TLS-Error``)."""
        return self.phase is Phase.HANDSHAKING

    def text(self) -> str:
        """nginx's error line for this failure, without the request context."""
        kind, action = self.kind, self.phase.value
        if kind is Kind.TIMEOUT:
            return f"upstream timed out (110: Connection timed out) while {action}"
        if kind is Kind.CLOSED:
            return f"upstream prematurely closed connection while {action}"
        if kind is Kind.ERROR:
            return f"{_SYSCALL.get(self.phase, 'recv()')} failed ({self.errno}: {self.detail}) while {action}"
        if kind is Kind.TLS and self.phase is not Phase.HANDSHAKING:
            call = "SSL_write()" if self.phase is Phase.SENDING else "SSL_read()"
            return f"{call} failed (SSL: error:SSL routines::{self.detail}) while {action}"
        if kind is Kind.INVALID and not self.detail:
            return f"upstream sent invalid header while {action}"
        return f"{self.detail} while {action}"

    def at(self, phase: Phase) -> UpstreamFailure:
        """The same failure, placed in ``phase`` (the exchange knows where it was; the connection does not)."""
        return UpstreamFailure(self.kind, phase, self.errno, self.detail, self.level)


def from_exception(exc: BaseException | None, phase: Phase) -> UpstreamFailure:
    """The failure an ended connection reports: ``connection_lost``'s argument (None for a clean EOF).

    An ``OSError`` with an errno is a reset or broken pipe; a TLS engine error is a broken record or a fatal alert;
    anything else, and no exception at all, is the peer closing.
    """
    if isinstance(exc, OSError) and exc.errno:
        return UpstreamFailure(Kind.ERROR, phase, exc.errno, os.strerror(exc.errno))
    if isinstance(exc, TlsError):
        return UpstreamFailure(Kind.TLS, phase, 0, exc.reason)
    return UpstreamFailure(Kind.CLOSED, phase)
