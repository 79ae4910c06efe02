"""The application protocol of a TLS connection on an ``http2`` listener, chosen by the ALPN the handshake agreed.

``TlsProtocol`` creates the application protocol once the handshake is complete; on an ``http2`` listener that is
an ``AlpnDispatch``, which asks the transport what ALPN selected and steps aside for the real protocol
(``set_protocol`` before any data is delivered): ``h2`` gets an ``H2Connection``, anything else (``http/1.1``,
``http/1.0``, no ALPN at all) the HTTP/1.1 connection every ``ssl`` listener serves. It costs one call per
connection and nothing per request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["AlpnDispatch"]


class AlpnDispatch(asyncio.Protocol):
    """Hands the established TLS transport to the protocol its ALPN names."""

    __slots__ = ("_h2", "_http1")

    def __init__(self, http1: Callable[[], asyncio.Protocol], h2: Callable[[], asyncio.Protocol]) -> None:
        self._http1 = http1
        self._h2 = h2

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        protocol = self._h2() if transport.get_extra_info("alpn") == "h2" else self._http1()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
