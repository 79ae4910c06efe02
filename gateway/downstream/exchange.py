"""One request as its connection drives it (``DownstreamExchange``): a compiled base class of the proxy's exchange.

Why a class and not a Protocol: a connection (``connection.HttpConnection``, ``http2.stream.H2Stream``) calls
``begin`` and ``body_complete`` and reads ``keep_alive``, ``status``, ``bytes_sent`` and ``request_id`` on every
request. Typed with a Protocol, compiled code does each by name (a method lookup or a descriptor call, a hundred
instructions and more); typed with this compiled class, a read is a struct field and a call goes through mypyc's
method table. The dependency stays downward: this module knows nothing of the proxy, whose
``proxy.exchange.Exchange`` derives from it through ``upstream.events.UpstreamEvents`` (one exchange, the two
views its two sides have of it, as one chain of compiled bases: mypyc gives a class one native base).
``allow_interpreted_subclasses``: test doubles and the pure-Python run subclass it.
"""

from __future__ import annotations

from mypy_extensions import mypyc_attr

from gateway.downstream.request import RequestHead

__all__ = ["DownstreamExchange"]


@mypyc_attr(allow_interpreted_subclasses=True)
class DownstreamExchange:
    """What a connection uses of the exchange serving one of its requests; the subclasses set the attributes."""

    __slots__ = ("bytes_sent", "finished_at", "head", "keep_alive", "request_id", "start", "status")

    head: RequestHead
    request_id: str
    status: int
    bytes_sent: int
    keep_alive: bool
    #: the loop's time when the request began (an HTTP/1.x connection sets it to its first byte's read, as nginx's
    #: ``$request_time`` counts from there; 0.0: ``begin`` takes the loop's time)
    start: float
    #: the loop's time of the read that finished the exchange, when the exchange knows it (the upstream's read
    #: that completed the response); 0.0: the connection reads the loop's clock itself
    finished_at: float

    @property
    def response_started(self) -> bool:
        """The response head is on its way to the client (the connection's timers and aborts ask)."""
        raise NotImplementedError

    def begin(self) -> None:
        raise NotImplementedError

    def feed_body(self, data: bytes) -> None:
        raise NotImplementedError

    def body_complete(self) -> None:
        raise NotImplementedError

    def client_aborted(self) -> None:
        raise NotImplementedError

    def on_client_pause_writing(self) -> None:
        raise NotImplementedError

    def on_client_resume_writing(self) -> None:
        raise NotImplementedError
