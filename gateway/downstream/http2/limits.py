"""HTTP/2 limits: nginx's defaults, and the attack shapes the ``h2`` library does not bound itself.

What ``h2`` (4.x) already refuses, as a connection error we answer with GOAWAY and a close (``H2Connection``):

- a CONTINUATION flood: more than 64 CONTINUATION frames in one header block (``h2.frame_buffer``), and any frame
  larger than ``SETTINGS_MAX_FRAME_SIZE`` (16 KiB, our default);
- a header list larger than ``SETTINGS_MAX_HEADER_LIST_SIZE`` once decoded (``hpack``'s ``max_header_list_size``,
  which we set to nginx's ``large_client_header_buffers`` total, 4 x 8k, before the client's first byte);
- an HPACK dynamic-table size update above our ``SETTINGS_HEADER_TABLE_SIZE`` (4096): COMPRESSION_ERROR (and a
  client's large ``SETTINGS_HEADER_TABLE_SIZE`` costs us nothing: our encoder keeps no table, ``http2.hpack_out``);
- window abuse: a WINDOW_UPDATE taking a window past 2^31-1, DATA beyond the window we granted: FLOW_CONTROL_ERROR;
- more open streams than ``SETTINGS_MAX_CONCURRENT_STREAMS`` (128, nginx's ``http2_max_concurrent_streams``).

What it does not bound, counted here per connection over a sliding ``WINDOW`` of loop time (``FloodCounter``):

- rapid reset (CVE-2023-44487): streams opened and reset by the client at once, each of which would have cost an
  exchange (routing, plugins, an upstream connection);
- SETTINGS and PING floods: each one makes us queue an ACK, so a client that sends them and never reads grows our
  output without bound;
- many new streams in one read (nginx 1.25.3's fix for the same CVE: ``2 * http2_max_concurrent_streams``).

Crossing a limit ends that connection alone with GOAWAY ``ENHANCE_YOUR_CALM`` and an ``info`` line, nginx's level
for client misbehaviour; other connections never notice.
"""

from __future__ import annotations

import enum
from typing import Final

__all__ = [
    "HEADER_TABLE_SIZE",
    "MAX_CONCURRENT_STREAMS",
    "WINDOW",
    "Flood",
    "FloodCounter",
]

#: nginx ``http2_max_concurrent_streams`` default
MAX_CONCURRENT_STREAMS: Final = 128
#: the HPACK dynamic table we let a client's encoder use (RFC 7541's default; nginx's too)
HEADER_TABLE_SIZE: Final = 4096
#: seconds over which the flood counters add up
WINDOW: Final = 10.0


class Flood(enum.Enum):
    """A counted client behaviour, with its limit per ``WINDOW`` and the reason logged when it is crossed."""

    #: the client reset streams it had opened (RST_STREAM on a stream we had not finished)
    RESETS = (2 * MAX_CONCURRENT_STREAMS, "client sent too many stream resets")
    #: SETTINGS frames (each one is ACKed)
    SETTINGS = (64, "client sent too many SETTINGS frames")
    #: PING frames (each one is answered)
    PINGS = (64, "client sent too many PING frames")
    #: new streams in one read (nginx's ``client sent too many streams at once``)
    STREAMS_AT_ONCE = (2 * MAX_CONCURRENT_STREAMS, "client sent too many streams at once")

    def __init__(self, limit: int, reason: str) -> None:
        self.limit = limit
        self.reason = reason


class FloodCounter:
    """Per-connection counts of each ``Flood`` kind: a fixed window restarted when it has passed.

    A fixed window (not a ring of timestamps) costs one comparison per event; a client can at most double a limit
    by timing its bursts around a window's edge, which still bounds the work.
    """

    __slots__ = ("_counts", "_started")

    def __init__(self, now: float) -> None:
        self._started = now
        self._counts: dict[Flood, int] = {}

    def add(self, kind: Flood, now: float, n: int = 1) -> bool:
        """Count ``n`` events of ``kind``; True when its limit is crossed."""
        if kind is not Flood.STREAMS_AT_ONCE and now - self._started > WINDOW:
            self._started = now
            self._counts.clear()
        count = self._counts.get(kind, 0) + n
        self._counts[kind] = count
        return count > kind.limit

    def reset(self, kind: Flood) -> None:
        """Start ``kind`` again from zero (``STREAMS_AT_ONCE`` at the end of each read)."""
        self._counts.pop(kind, None)
