"""What the downstream side needs of the proxy above it, as Protocols: the exchange and what a listener reads.

``gateway.downstream`` sits below ``gateway.proxy``: the proxy's ``ProxyState`` is handed to every connection and
listener, and its ``Exchange`` class is handed down as ``exchange_type``, so that nothing here imports the proxy.
These Protocols name exactly what is used of them; ``ProxyState`` and ``Exchange`` satisfy them as they are. What
the connections share is a class, not a Protocol: ``shared.SharedState`` (it says why), ``ProxyState``'s base.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from gateway.downstream.request import RequestHead
from gateway.observability.errorlog import ErrorLog
from gateway.settings import Settings
from gateway.tls.served.certificates import CertificateIndex

__all__ = ["DownstreamExchange", "ListenerState"]


class DownstreamExchange(Protocol):
    """One request as its connection drives it (``proxy.exchange.Exchange``)."""

    head: RequestHead
    request_id: str
    status: int
    bytes_sent: int
    keep_alive: bool

    @property
    def response_started(self) -> bool: ...

    def begin(self) -> None: ...

    def feed_body(self, data: bytes) -> None: ...

    def body_complete(self) -> None: ...

    def client_aborted(self) -> None: ...

    def on_client_pause_writing(self) -> None: ...

    def on_client_resume_writing(self) -> None: ...


class _Plugins(Protocol):
    @property
    def certificate_phase(self) -> Callable[[Any, str | None, Any], None] | None: ...


class _Snapshot(Protocol):
    @property
    def certificates(self) -> CertificateIndex | None: ...

    @property
    def plugins(self) -> _Plugins: ...


class ListenerState(Protocol):
    """What an ``ssl`` listener reads of the proxy state: the current snapshot's certificates, and the drain."""

    shutting_down: bool

    @property
    def settings(self) -> Settings: ...

    @property
    def error_log(self) -> ErrorLog: ...

    @property
    def snapshot(self) -> _Snapshot: ...

    @property
    def pending(self) -> set[Any]: ...

    def settle_pending(self, item: Any) -> None: ...
