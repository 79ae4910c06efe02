"""Flow control: every pause and resume of one transport goes through one ``FlowControl`` (lesson 9).

Reading is paused for *reasons* (a bit each): the upstream cannot take more request body, too many
pipelined requests are queued, too much body is buffered before the upstream connection exists.
``resume_reading(reason)`` clears one reason and resumes only when none is left, so two independent
causes cannot resume each other's pause (uvicorn's stale ``read_paused`` bug). Hysteresis comes from the
callers: the transport's write-buffer high/low water marks for ``pause_writing``/``resume_writing``, and
"resume at half" for the queues.

Writing state (``write_paused``) is recorded here when the transport calls ``pause_writing``; whoever
produces bytes for this transport checks it and pauses its own source.

Writes at the end of the loop's tick (``TickWrites``): a connection that has bytes to send holds them and asks
to be flushed once the event loop has run every callback of its current tick, so what one tick produced for a
socket leaves in one write, and the writes of a tick leave together. Why: on loopback, each socket write wakes the
peer that reads it; a peer that finished its previous message and went back to sleep is woken again for every
message (on a virtual machine an inter-processor interrupt each, the largest kernel cost per request measured
here). Written while the gateway still parses the next requests, the upstream's requests woke it once per request;
written together, once per tick. Order is kept per connection (held bytes are written before anything written
later, and before a close); a tick is the loop's batch of ready events, so the delay is the rest of that batch.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from typing import Final

__all__ = [
    "BODY_HIGH_WATER",
    "PAUSE_BUFFER",
    "PAUSE_PEER",
    "PAUSE_PIPELINE",
    "FlowControl",
    "TickWrites",
    "flush_nothing",
    "peer_and_port",
    "write_pieces",
]

PAUSE_PEER: Final = 1  # the other side of the proxy cannot accept more bytes
PAUSE_PIPELINE: Final = 2  # too many pipelined requests queued
PAUSE_BUFFER: Final = 4  # too much request body buffered while the upstream connection is being set up

BODY_HIGH_WATER: Final = 64 * 1024
#: held pieces up to this many bytes in all are joined and written as one buffer: uvloop's ``writelines`` takes each
#: piece as a buffer of its own, which costs more than copying a head and a small body once (a 300-byte head and a
#: 24-byte body to a socket: 0.88-0.90 us per ``write`` of the join, 0.95-0.99 per ``writelines``; TUNING #26);
#: above it they go by ``writelines``, so that a large body is not copied
JOIN_LIMIT: Final = 16 * 1024


class FlowControl:
    """Read pausing by reason, and the write-paused flag, for one transport."""

    __slots__ = ("_reasons", "read_paused", "transport", "write_paused")

    def __init__(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self._reasons = 0
        #: whether any reason holds reading paused (kept with the reasons: read per response, a plain attribute)
        self.read_paused = False
        self.write_paused = False

    def pause_reading(self, reason: int) -> None:
        if self._reasons == 0:
            try:
                self.transport.pause_reading()  # type: ignore[attr-defined]
            except (RuntimeError, AttributeError):  # closing transport
                pass
        self._reasons |= reason
        self.read_paused = True

    def resume_reading(self, reason: int) -> None:
        if not self._reasons & reason:
            return
        self._reasons &= ~reason
        if self._reasons == 0:
            self.read_paused = False
            try:
                self.transport.resume_reading()  # type: ignore[attr-defined]
            except (RuntimeError, AttributeError):
                pass


def flush_nothing() -> None:
    """A closed connection's flush. A connection keeps its ``_flush`` bound once (a bound method made per ``hold`` was
    an object per tick) and swaps this in when its socket goes, which breaks the connection -> bound method ->
    connection cycle, so that reference counting frees it (``test_connection_release.py``, ``test_pool_hygiene.py``)."""


def write_pieces(transport: asyncio.WriteTransport, pieces: list[bytes]) -> None:
    """``pieces`` to ``transport`` in one call: one ``write``, of the pieces joined when they are small."""
    if len(pieces) == 1:
        transport.write(pieces[0])
        return
    size = 0
    for piece in pieces:
        size += len(piece)
    if size <= JOIN_LIMIT:
        transport.write(b"".join(pieces))
    else:
        transport.writelines(pieces)


def peer_and_port(transport: asyncio.BaseTransport, local_port: int) -> tuple[str, int]:
    """The client's address (``unix:`` for a unix socket) and the local port, for a new connection.

    Only a listener bound to port 0 needs the socket's word for the port (each query is a getsockname call; an
    accepted socket's local port is the listening port), so ``local_port`` is kept when it is known.
    """
    peer = transport.get_extra_info("peername")
    peer_ip = peer[0] if isinstance(peer, tuple) else "unix:"
    if not local_port:
        sock = transport.get_extra_info("sockname")
        if isinstance(sock, tuple):
            local_port = sock[1]
    return peer_ip, local_port


class TickWrites:
    """The connections that hold writes for the end of the loop's tick (see the module docstring): one per process
    state; each ``hold`` registers a connection's flush once, one ``call_soon`` runs them all."""

    __slots__ = ("_context", "_held", "_loop", "_run")

    def __init__(self) -> None:
        self._held: list[Callable[[], None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._run = self.run  # one bound method, not one per tick
        # The flushes run in a context of their own, made once: ``call_soon`` without one copies the current
        # context each tick (a quarter of the call's cost); the flushes read no context variable.
        self._context = contextvars.Context()

    def hold(self, loop: asyncio.AbstractEventLoop, flush: Callable[[], None]) -> None:
        """Run ``flush`` once the current tick's callbacks have run (the caller registers it once per tick)."""
        held = self._held
        if not held or loop is not self._loop:
            if held:  # flushes for a loop that stopped before running them (tests run one loop after another)
                held.clear()
            self._loop = loop
            loop.call_soon(self._run, context=self._context)
        held.append(flush)

    def run(self) -> None:
        """The tick's flushes: the loop calls it once the tick's callbacks have run; the in-process benchmarks,
        which drive connections without the loop, call it where a tick would end."""
        held = self._held
        self._held = []
        for flush in held:
            try:
                flush()
            except Exception as exc:  # a flush does not raise; if one did, the others still run
                loop = self._loop
                if loop is not None:
                    loop.call_exception_handler({"message": "deferred write failed", "exception": exc})
