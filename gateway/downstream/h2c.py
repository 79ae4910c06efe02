"""``http2`` on a plain proxy listener: HTTP/2 with prior knowledge (h2c) next to HTTP/1.1, told apart by the preface.

What Kong does: since Kong's template moved to nginx 1.25's ``http2 on;`` (``kong/templates/nginx_kong.lua``; the
listener flag is stripped by ``conf_loader/listeners.lua``), a plain listener of a server with HTTP/2 on reads the
first bytes of each connection and, when they are the client connection preface (``PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n
\\r\\n``, ``ngx_http_wait_request_handler``), serves HTTP/2; anything else is served as HTTP/1.1. There is no
``Upgrade: h2c`` (nginx never implemented it). This gateway does the same on each plain listener flagged ``http2``
(Kong turns it on for the whole proxy server when any listener has the flag: docs/compatibility.md).

How: ``PrefaceSniff`` hands the socket to the HTTP/1.1 connection at once (its timers and counters run from the
accept, as for any plain connection) and looks only at the first read: a preface (or the start of one, held until
it is complete or contradicted) retires that connection before it parsed anything and hands the socket to an
``H2Connection``. Afterwards it is out of the way (``set_protocol``): no call per read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final, cast

__all__ = ["PREFACE", "PrefaceSniff"]

PREFACE: Final = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class PrefaceSniff(asyncio.Protocol):
    """The first protocol of a plain ``http2`` listener's socket."""

    __slots__ = ("_h2", "_held", "_http1", "_http1_factory", "_transport")

    def __init__(self, http1: Callable[[], asyncio.Protocol], h2: Callable[[], asyncio.Protocol]) -> None:
        self._http1_factory = http1
        self._h2 = h2
        self._http1: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._held = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._http1 = self._http1_factory()
        self._http1.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        transport = self._transport
        http1 = self._http1
        if transport is None or http1 is None:
            return
        data = self._held + data
        n = min(len(data), len(PREFACE))
        if data[:n] != PREFACE[:n]:  # HTTP/1.x (or garbage, which HTTP/1.1 answers with its 400)
            self._step_aside(http1, data)
            return
        if n < len(PREFACE):
            self._held = data  # the preface so far: wait for the rest
            return
        self._held = b""
        self._http1 = None
        http1.connection_lost(None)  # retired before it saw a byte: unregisters, cancels its timer
        h2 = self._h2()
        transport.set_protocol(h2)
        h2.connection_made(transport)
        h2.data_received(data)

    def _step_aside(self, protocol: asyncio.Protocol, data: bytes) -> None:
        transport = self._transport
        assert transport is not None
        self._held = b""
        self._transport = None
        self._http1 = None
        transport.set_protocol(protocol)
        protocol.data_received(data)

    def eof_received(self) -> bool | None:
        http1 = self._http1
        return http1.eof_received() if http1 is not None else None

    def pause_writing(self) -> None:
        if self._http1 is not None:
            self._http1.pause_writing()

    def resume_writing(self) -> None:
        if self._http1 is not None:
            self._http1.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        http1 = self._http1
        self._http1 = None
        self._transport = None
        if http1 is not None:
            http1.connection_lost(exc)
