"""``ProxyState``: what every downstream connection shares (settings, logs, snapshot, pool, counters).

Its bases hold what the parts read: ``gateway.downstream.shared.SharedState`` the connections' half (settings,
logs, counters, the connection registry, trusted addresses), ``proxy.context.ProxyContext`` the exchanges' (the
snapshot, the pool, DNS, the drain); this class adds the listeners' wiring. Rules:

- ``snapshot`` is reassigned by the runtime on configuration changes; each request reads it once when
  it starts (``Exchange.begin``) and keeps that object.
- ``protocol_factory(listener)`` returns the zero-argument factory for ``loop.create_server``; the
  parser class comes from ``http_parser`` (an import map, ``http1.PROTOCOLS``). An ``ssl`` listener gets a
  ``TlsListener`` in front of the same HTTP factory (kept in ``tls_listeners``; ``refresh_tls()`` after a
  SIGHUP rebuilds their base contexts). With ``http2``, an ``ssl`` listener's app is an ``AlpnDispatch``
  (HTTP/2 or that factory, by ALPN), a plain listener's a ``PrefaceSniff`` (h2c with prior knowledge or HTTP/1.1).
- ``begin_shutdown()`` closes idle keepalive connections now, marks busy ones to close after their
  current response and stops pooling upstream connections; ``wait_idle`` awaits an event (no polling);
  ``close()`` closes the upstream pool.
- It is where the proxy's parts meet: the downstream protocols (``gateway.downstream``), the exchange they
  create per request (``exchange_type``), the upstream pool and DNS cache (``gateway.upstream``).
- Derived settings are computed once (in ``SharedState``): header policy, head limits, the trusted-IP networks.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

from gateway.downstream.alpn import AlpnDispatch
from gateway.downstream.h2c import PrefaceSniff
from gateway.downstream.http1 import PROTOCOLS
from gateway.downstream.http2 import H2Connection
from gateway.downstream.tls_listener import TlsListener
from gateway.observability.accesslog import AccessLog
from gateway.observability.errorlog import ErrorLog
from gateway.proxy.context import ProxyContext
from gateway.proxy.exchange import new_exchange
from gateway.settings import Listener, Settings

if TYPE_CHECKING:
    from gateway.runtime.snapshot import Snapshot

__all__ = ["ProxyState"]


class ProxyState(ProxyContext):
    """Shared state of the proxy listeners of one process: what the exchanges read (``ProxyContext``, with the
    connections' half ``SharedState`` under it) and the listeners' wiring."""

    def __init__(self, settings: Settings, error_log: ErrorLog, access_log: AccessLog, snapshot: Snapshot) -> None:
        super().__init__(settings, error_log, access_log, snapshot, new_exchange)
        self.tls_listeners: list[TlsListener] = []

    # ------------------------------------------------------------------ wiring
    def protocol_factory(self, listener: Listener) -> Callable[[], asyncio.Protocol]:
        cls = PROTOCOLS[self.settings.http_parser]
        loop = asyncio.get_running_loop()  # the servers' loop, handed to each connection (``HttpConnection``)

        def factory() -> asyncio.Protocol:
            return cls(self, listener, loop)

        if listener.ssl:
            app: Callable[[], asyncio.Protocol] = factory
            if listener.http2:  # ALPN h2 -> HTTP/2, anything else -> the same HTTP/1.1 connection
                app = functools.partial(AlpnDispatch, factory, functools.partial(H2Connection, self, listener, loop))

            tls = TlsListener(self, listener, app, loop, position=len(self.tls_listeners))
            self.tls_listeners.append(tls)
            return tls.protocol_factory
        if listener.http2:  # h2c with prior knowledge next to HTTP/1.1, told apart by the preface (``h2c``)
            return functools.partial(PrefaceSniff, factory, functools.partial(H2Connection, self, listener, loop))
        return factory

    def refresh_tls(self) -> None:
        """Rebuild every ``ssl`` listener's base context from the current snapshot (after a SIGHUP)."""
        for tls in self.tls_listeners:
            tls.refresh()
