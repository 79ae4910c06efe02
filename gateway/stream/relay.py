"""Bytes both ways between a client and an upstream: one ``Endpoint`` per side, wired to each other.

An ``Endpoint`` is the asyncio protocol of one side (the raw socket for plain and passthrough traffic, the app
protocol of a ``TlsProtocol`` when TLS is terminated there). What it receives is written to its peer at once, in the
callback, with no task and no copy; until the session wires the two sides (the upstream is still being connected,
or the client's handshake is under way), received bytes are held and reading is paused.

- **Backpressure**: when a side's transport buffer passes its high-water mark (``pause_writing``), the *other* side
  stops reading until it drains (``resume_writing``), so a fast sender never grows our memory past the transports'
  buffers; nginx does the same with its fixed ``proxy_buffer_size``.
- **Half-close**: an end of stream from one side (TCP FIN, or a TLS close_notify) is passed on as an end of stream to
  the other (``write_eof``: ``shutdown(SHUT_WR)`` after the buffered bytes, or our close_notify on a TLS side, which
  keeps reading), and the other direction runs on until it ends too (nginx's ``proxy_half_close on``). The session
  ends when both directions have ended, or either socket is gone.
- **Counters**: ``received`` / ``sent`` are the bytes read from and written to this side (plaintext on a TLS side, as
  nginx counts them), for nginx's ``bytes from/to client:.., bytes from/to upstream:..`` log fields.
- **Activity**: every read stamps the session's clock (``touch``), which the idle timeout reads.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.tls.engine.transport import TlsProtocol

__all__ = ["Endpoint", "Relay"]


class Relay:
    """What an ``Endpoint`` reports to (the stream session)."""

    __slots__ = ()

    def touch(self) -> None:
        """Bytes moved: the idle timeout starts again."""

    def endpoint_connected(self, endpoint: Endpoint) -> None:
        """The side's transport is there (for a TLS side: the handshake is complete)."""

    def endpoint_eof(self, endpoint: Endpoint) -> None:
        """The side ended its stream (FIN or close_notify); it may still be written to."""

    def endpoint_lost(self, endpoint: Endpoint, exc: Exception | None) -> None:
        """The side's socket is gone."""


class Endpoint(asyncio.Protocol):
    """One side of a stream session (see the module docstring)."""

    __slots__ = (
        "_held",
        "_relay",
        "closed",
        "eof",
        "eof_sent",
        "name",
        "peer",
        "raw",
        "received",
        "sent",
        "tls",
        "transport",
    )

    def __init__(self, relay: Relay, name: str) -> None:
        self._relay = relay
        self.name = name  # "client" or "upstream", as nginx names the sides
        self.transport: Any = None
        #: the socket transport (the same object as ``transport`` unless TLS is terminated on this side)
        self.raw: Any = None
        #: the TLS engine protocol of this side, for its close_notify (None: plain bytes)
        self.tls: TlsProtocol | None = None
        self.peer: Endpoint | None = None
        self._held: list[bytes] = []
        self.received = 0
        self.sent = 0
        self.eof = False
        self.eof_sent = False
        self.closed = False

    # -- asyncio callbacks ------------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        if self.raw is None:
            self.raw = transport
        self._relay.endpoint_connected(self)

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        self._relay.touch()
        peer = self.peer
        if peer is None:
            self.hold(data)
            return
        if not peer.closed:
            peer.sent += len(data)
            peer.transport.write(data)

    def eof_received(self) -> bool:
        self.eof = True
        self._relay.endpoint_eof(self)
        return True  # keep our side open for writing: the other direction may still be running

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._relay.endpoint_lost(self, exc)

    def pause_writing(self) -> None:
        peer = self.peer
        if peer is not None and peer.transport is not None and not peer.closed:
            peer.transport.pause_reading()

    def resume_writing(self) -> None:
        peer = self.peer
        if peer is not None and peer.transport is not None and not peer.closed:
            peer.transport.resume_reading()

    # -- the session's calls ----------------------------------------------------------------------------------
    def hold(self, data: bytes) -> None:
        """Keep bytes received before the sides are wired, and stop reading until then."""
        if data:
            self._held.append(data)
        transport = self.transport
        if transport is not None and not self.closed:
            transport.pause_reading()

    def wire(self, peer: Endpoint) -> None:
        """Start relaying to ``peer``: what was held goes first, then reading resumes."""
        self.peer = peer
        held, self._held = self._held, []
        for data in held:
            peer.sent += len(data)
            peer.transport.write(data)
        if not self.closed and not self.eof and self.transport is not None:
            self.transport.resume_reading()

    def write_eof(self) -> None:
        """End our stream towards this side, once: FIN after the buffered bytes, or a close_notify on TLS."""
        if self.eof_sent or self.closed:
            return
        self.eof_sent = True
        tls = self.tls
        if tls is not None:
            closing = tls.session.close()  # reading stays possible: the peer's own close_notify is still read
            raw = self.raw
            if closing and raw is not None and not raw.is_closing():
                raw.write(closing)
            return
        transport = self.transport
        if transport is not None and transport.can_write_eof():
            transport.write_eof()

    def close(self) -> None:
        """Close after the buffered bytes (a TLS side sends its close_notify first, if it has not yet)."""
        transport = self.transport if self.transport is not None else self.raw
        if transport is not None and not self.closed:
            transport.close()

    def abort(self) -> None:
        transport = self.raw if self.raw is not None else self.transport
        if transport is not None and not self.closed:
            transport.abort()
