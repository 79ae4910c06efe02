"""The client's side of an exchange, as a compiled base class: an HTTP/1.x connection or an HTTP/2 stream.

Why a class and not a Protocol: the exchange (``proxy.exchange_base``) reads these attributes and calls these methods
on every request (the loop, the listener's port, TLS, SNI, the peer, ``write``/``cork``/``uncork``...). Typed with a
Protocol, compiled code reads each by name (a type walk and a descriptor call, ~100 instructions); typed with this
compiled class, a read is a struct field and a call goes through mypyc's method table.
``downstream.connection.HttpConnection`` (compiled) and ``downstream.http2.stream.H2Stream`` (interpreted, hence
``allow_interpreted_subclasses``) derive from it and set every attribute in their ``__init__``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from mypy_extensions import mypyc_attr

from gateway.downstream.exchange import DownstreamExchange
from gateway.downstream.flow import FlowControl
from gateway.downstream.request import HeadLimits
from gateway.downstream.shared import SharedState

__all__ = ["ClientSide"]


@mypyc_attr(allow_interpreted_subclasses=True)
class ClientSide(asyncio.Protocol):
    """What an exchange uses of its client's side; the subclasses set the attributes."""

    __slots__ = (
        "clock",
        "closing",
        "conn_id",
        "flow",
        "https",
        "limits",
        "local_port",
        "loop",
        "peer_ip",
        "peer_trusted",
        "plugin_cache",
        "remote_addr",
        "sni",
        "state",
        "tls",
    )

    state: SharedState
    loop: asyncio.AbstractEventLoop
    #: ``loop.time``, bound once (``HttpConnection.clock``)
    clock: Callable[[], float]
    limits: HeadLimits
    flow: FlowControl
    conn_id: int
    remote_addr: str
    peer_ip: str
    peer_trusted: bool
    local_port: int
    https: bool
    tls: object | None
    sni: str | None
    plugin_cache: dict[object, object] | None
    closing: bool

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def cork(self) -> bool:
        raise NotImplementedError

    def uncork(self) -> None:
        raise NotImplementedError

    def host_var(self, host: str | None) -> str:
        raise NotImplementedError

    def exchange_finished(self, ex: DownstreamExchange, abort: bool) -> None:
        raise NotImplementedError
