"""What an ``ssl`` listener needs of the proxy above it, as a Protocol (``ListenerState``).

``gateway.downstream`` sits below ``gateway.proxy``: the proxy's ``ProxyState`` is handed to every connection and
listener, and its ``Exchange`` class is handed down as ``exchange_type``, so that nothing here imports the proxy.
The Protocol names exactly what is read of the state; ``ProxyState`` satisfies it as it is. What the connections
use on every request are compiled classes instead: ``shared.SharedState`` (``ProxyState``'s base) and
``exchange.DownstreamExchange`` (the ``Exchange``'s), each saying why.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from gateway.observability.errorlog import ErrorLog
from gateway.settings import Settings
from gateway.tls.served.certificates import CertificateIndex

__all__ = ["ListenerState"]


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
