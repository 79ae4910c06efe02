"""Flow control: every pause and resume of one transport goes through one ``FlowControl`` (lesson 9).

Reading is paused for *reasons* (a bit each): the upstream cannot take more request body, too many
pipelined requests are queued, too much body is buffered before the upstream connection exists.
``resume_reading(reason)`` clears one reason and resumes only when none is left, so two independent
causes cannot resume each other's pause (uvicorn's stale ``read_paused`` bug). Hysteresis comes from the
callers: the transport's write-buffer high/low water marks for ``pause_writing``/``resume_writing``, and
"resume at half" for the queues.

Writing state (``write_paused``) is recorded here when the transport calls ``pause_writing``; whoever
produces bytes for this transport checks it and pauses its own source.
"""

from __future__ import annotations

import asyncio
from typing import Final

__all__ = ["BODY_HIGH_WATER", "PAUSE_BUFFER", "PAUSE_PEER", "PAUSE_PIPELINE", "FlowControl", "peer_and_port"]

PAUSE_PEER: Final = 1  # the other side of the proxy cannot accept more bytes
PAUSE_PIPELINE: Final = 2  # too many pipelined requests queued
PAUSE_BUFFER: Final = 4  # too much request body buffered while the upstream connection is being set up

BODY_HIGH_WATER: Final = 64 * 1024


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
