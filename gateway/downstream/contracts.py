"""What the downstream side needs of the proxy above it, as Protocols: the shared state and the exchange.

``gateway.downstream`` sits below ``gateway.proxy``: the proxy's ``ProxyState`` is handed to every connection and
listener, and its ``Exchange`` class is handed down as ``exchange_type``, so that nothing here imports the proxy.
These Protocols name exactly what is used of them; ``ProxyState`` and ``Exchange`` satisfy them as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from gateway.downstream.headers import DateCache, HeaderPolicy
from gateway.downstream.request import HeadLimits, RequestHead
from gateway.observability.accesslog import AccessLog
from gateway.observability.errorlog import ErrorLog
from gateway.settings import Settings
from gateway.tls.served.certificates import CertificateIndex

__all__ = ["ConnectionState", "DownstreamExchange", "ListenerState"]

#: the connection class a state registers (``connection.HttpConnection``)
Conn_contra = TypeVar("Conn_contra", contravariant=True)


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


class ConnectionState(Protocol[Conn_contra]):
    """What every downstream connection of a process shares (``proxy.state.ProxyState``)."""

    #: nginx ``stub_status`` counters, updated by the connections
    connections_reading: int
    connections_writing: int
    total_requests: int

    @property
    def settings(self) -> Settings: ...

    @property
    def error_log(self) -> ErrorLog: ...

    @property
    def access_log(self) -> AccessLog: ...

    @property
    def date(self) -> DateCache: ...

    @property
    def header_policy(self) -> HeaderPolicy: ...

    @property
    def head_limits(self) -> HeadLimits: ...

    @property
    def exchange_type(self) -> Callable[[Conn_contra, RequestHead], DownstreamExchange]:
        """What a connection creates per request head."""
        ...

    def is_trusted(self, ip: str) -> bool: ...

    def real_ip(self, peer_ip: str, head: RequestHead) -> str: ...

    def register(self, conn: Conn_contra) -> int: ...

    def unregister(self, conn: Conn_contra) -> None: ...


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
