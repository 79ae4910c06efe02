"""``ProxyContext``: what an exchange reads of its process - the snapshot, the upstream pool, DNS - and the drain.

The base of ``proxy.state.ProxyState``, apart from it so that the exchange can name its class without importing the
module that wires the listeners (which imports the exchange): compiled with mypyc, an exchange reads these as struct
fields (``downstream/shared.py`` says why that matters). Below it, ``SharedState`` is what the connections read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gateway.downstream.shared import SharedState
from gateway.upstream.dns import DnsCache, config_from_settings
from gateway.upstream.pool import UpstreamPool

if TYPE_CHECKING:
    from gateway.downstream.exchange import DownstreamExchange
    from gateway.downstream.request import RequestHead
    from gateway.observability.accesslog import AccessLog
    from gateway.observability.errorlog import ErrorLog
    from gateway.runtime.snapshot import Snapshot
    from gateway.settings import Settings

__all__ = ["ProxyContext"]


class ProxyContext(SharedState):
    """The proxy's half of the process state: ``snapshot`` (reassigned by the runtime on configuration changes; each
    request reads it once when it starts), the pool, the DNS cache, ``allow_debug_header``, the drain."""

    def __init__(
        self,
        settings: Settings,
        error_log: ErrorLog,
        access_log: AccessLog,
        snapshot: Snapshot,
        exchange_type: Callable[[Any, RequestHead], DownstreamExchange],
    ) -> None:
        super().__init__(settings, error_log, access_log, exchange_type)
        self.snapshot = snapshot
        #: ``allow_debug_header``: a ``Kong-Debug`` request gets Kong's debug headers and the TLS trace
        self.debug_header = settings.allow_debug_header
        self.dns = DnsCache(config_from_settings(settings))
        self._pool: UpstreamPool | None = None

    @property
    def pool(self) -> UpstreamPool:
        """The upstream pool, created on first use inside the running loop."""
        pool = self._pool
        if pool is None:
            s = self.settings
            pool = self._pool = UpstreamPool(
                asyncio.get_running_loop(),
                s.upstream_keepalive_pool_size,
                s.upstream_keepalive_max_requests,
                float(s.upstream_keepalive_idle_timeout),
            )
            if self.shutting_down:
                pool.shutdown()
        return pool

    # ------------------------------------------------------------------ lifecycle
    def begin_shutdown(self) -> None:
        self.shutting_down = True
        if self._pool is not None:
            self._pool.shutdown()
        for conn in list(self.connections):
            conn.shutdown()
        for item in list(self.pending):
            item.shutdown()

    async def wait_idle(self, timeout: float) -> bool:
        """True once every downstream connection is closed, False if ``timeout`` passes first.

        A socket accepted in the loop's last pass has a transport whose ``connection_made`` (registration here) is
        only scheduled (uvloop calls it soon, not at once); one pass of the loop lets it register, so it is drained
        (served, with its grace for the first request) rather than dropped when the process exits.
        """
        await asyncio.sleep(0)
        if not self.connections and not self.pending:
            return True
        if self._idle_event is None:
            self._idle_event = asyncio.Event()
        try:
            async with asyncio.timeout(timeout):
                await self._idle_event.wait()
        except TimeoutError:
            return not self.connections and not self.pending
        return True

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
