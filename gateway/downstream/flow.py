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

__all__ = ["BODY_HIGH_WATER", "PAUSE_BUFFER", "PAUSE_PEER", "PAUSE_PIPELINE", "FlowControl"]

PAUSE_PEER = 1  # the other side of the proxy cannot accept more bytes
PAUSE_PIPELINE = 2  # too many pipelined requests queued
PAUSE_BUFFER = 4  # too much request body buffered while the upstream connection is being set up

BODY_HIGH_WATER = 64 * 1024


class FlowControl:
    """Read pausing by reason, and the write-paused flag, for one transport."""

    __slots__ = ("_reasons", "transport", "write_paused")

    def __init__(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self._reasons = 0
        self.write_paused = False

    @property
    def read_paused(self) -> bool:
        return self._reasons != 0

    def pause_reading(self, reason: int) -> None:
        if self._reasons == 0:
            try:
                self.transport.pause_reading()  # type: ignore[attr-defined]
            except (RuntimeError, AttributeError):  # closing transport
                pass
        self._reasons |= reason

    def resume_reading(self, reason: int) -> None:
        if not self._reasons & reason:
            return
        self._reasons &= ~reason
        if self._reasons == 0:
            try:
                self.transport.resume_reading()  # type: ignore[attr-defined]
            except (RuntimeError, AttributeError):
                pass
