"""What an upstream connection reports to the exchange using it (``UpstreamEvents``), and the client side it corks.

Why a base class and not a Protocol: the exchange (``proxy.exchange_base.ExchangeBase``) derives from it, and the
module is compiled (``gateway/compiled.py``), so an ``UpstreamConnection`` or an HTTP/2 stream calls the exchange's
``on_upstream_*`` through mypyc's method table: through a Protocol, each was a call by name (a method lookup and an
argument check, several hundred instructions, three or four per request). The proxy layer still depends on this
one, not the other way round. ``allow_interpreted_subclasses``: test doubles (and the pure-Python run) subclass it.
The exchange's ``sink`` is typed with the compiled ``downstream.client.ClientSide`` for the same reason: the upstream
connection corks and uncorks it around every read, through the method table instead of two calls by name. Its base,
``downstream.exchange.DownstreamExchange``, is the same exchange as its client connection drives it.
"""

from __future__ import annotations

import asyncio

from mypy_extensions import mypyc_attr

from gateway.downstream.client import ClientSide
from gateway.downstream.exchange import DownstreamExchange
from gateway.upstream.failures import UpstreamFailure

__all__ = ["UpstreamEvents"]


@mypyc_attr(allow_interpreted_subclasses=True)
class UpstreamEvents(DownstreamExchange):
    """The exchange, as its upstream connection (or HTTP/2 stream) sees it. Every method is the exchange's."""

    __slots__ = ()

    @property
    def sink(self) -> ClientSide:
        """The client's side (an HTTP/1.x connection or an HTTP/2 stream): the events of one upstream read are
        written to it corked (``ClientSide.cork``)."""
        raise NotImplementedError

    def on_upstream_head(self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        raise NotImplementedError

    def on_upstream_body(self, data: bytes) -> None:
        raise NotImplementedError

    def on_upstream_complete(self, keep_alive: bool) -> None:
        raise NotImplementedError

    def on_upstream_trailing(self, text: str) -> None:
        raise NotImplementedError

    def on_upstream_trailers(self, trailers: list[tuple[bytes, bytes]]) -> None:
        """HTTP/2 trailers (``h2.stream.H2UpstreamStream``), before ``on_upstream_complete``."""
        raise NotImplementedError

    def on_upstream_error(self, failure: UpstreamFailure) -> None:
        raise NotImplementedError

    def on_upstream_pause_writing(self) -> None:
        raise NotImplementedError

    def on_upstream_resume_writing(self) -> None:
        raise NotImplementedError

    def on_upstream_upgrade(self, reason: bytes, headers: list[tuple[bytes, bytes]]) -> bool:
        """A 101: True if the request asked for it (the exchange relayed it), False to refuse it (502)."""
        raise NotImplementedError

    def on_upstream_switched(self, transport: asyncio.Transport, rest: bytes) -> None:
        """After an accepted 101: the transport is the exchange's (``rest``: the bytes that followed the head)."""
        raise NotImplementedError
