"""Where an Admin API connection is (``Phase``), and its one timer (``Deadline``).

Timeouts (the ``client_header_timeout``, ``client_body_timeout`` and ``keepalive_timeout`` settings, shared
with the proxy listeners), per phase of the connection (``Phase``), measured against nginx 1.22:

============  ==========================================  =====================================================
phase         timer                                       on expiry
============  ==========================================  =====================================================
WAITING       ``client_header_timeout`` from accept       close; ``info`` ``client timed out (110: Connection
                                                          timed out) while waiting for request``
HEAD          ``client_header_timeout`` for the whole     close, no answer; ``info`` ``client timed out (...)
              head (from accept for the first request,    while reading client request line`` (or ``headers``)
              from its first byte after keep-alive)       and a 408 in the access log
BODY          ``client_body_timeout`` between two reads   close, no answer (nginx finalizes with 408, which
                                                          closes without a response), no error line, a 408 in
                                                          the access log
HANDLING      none (the handler runs to its end)
SENDING       ``SEND_TIMEOUT`` (nginx's ``send_timeout``)  abort; ``info`` ``client timed out (110: Connection
              between two writes                          timed out)``
KEEPALIVE     ``keepalive_timeout``                       close silently (0 = ``Connection: close`` on every
                                                          response)
LINGERING     ``server.py``: the lingering close          close
============  ==========================================  =====================================================

One timer per connection (``Deadline``): moving the deadline is an attribute write; the timer re-arms itself
when it fires early, and cancels the connection's task when the deadline has passed.
"""

from __future__ import annotations

import asyncio
import enum
from typing import Any

__all__ = ["Deadline", "Phase"]


class Phase(enum.Enum):
    """Where a connection is, which decides what its deadline is and what expiry means (module docstring)."""

    WAITING = enum.auto()  # nothing of the first request yet
    HEAD = enum.auto()  # part of a request head
    BODY = enum.auto()  # the head, part of the body
    HANDLING = enum.auto()  # the app is answering: no deadline
    SENDING = enum.auto()  # writing the answer
    KEEPALIVE = enum.auto()  # between two requests
    LINGERING = enum.auto()  # after a refusal, dropping what still comes


class Deadline:
    """The one timer of a connection. ``arm``/``arm_at`` set the deadline, ``disarm`` clears it.

    The timer is created only when the new deadline is earlier than the armed one; when it fires before a
    deadline that moved later it re-arms itself there, and when the deadline has passed it sets ``expired``
    and cancels the connection's task (the ``CancelledError`` surfaces at the read or write awaited then).
    """

    __slots__ = ("_armed", "_handle", "_loop", "_task", "_when", "expired")

    def __init__(self, loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any]) -> None:
        self._loop = loop
        self._task = task
        self._handle: asyncio.TimerHandle | None = None
        self._armed = 0.0
        self._when: float | None = None
        self.expired = False

    def arm(self, seconds: float) -> None:
        self.arm_at(self._loop.time() + seconds)

    def arm_at(self, when: float) -> None:
        self._when = when
        if self._handle is None or when < self._armed:
            if self._handle is not None:
                self._handle.cancel()
            self._armed = when
            self._handle = self._loop.call_at(when, self._fire)

    def disarm(self) -> None:
        self._when = None

    def _fire(self) -> None:
        self._handle = None
        when = self._when
        if when is None:
            return
        if when > self._armed:
            self._armed = when
            self._handle = self._loop.call_at(when, self._fire)
            return
        self.expired = True
        self._task.cancel()

    def close(self) -> None:
        self._when = None
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
