"""An exchange's tries on a ``grpc``/``grpcs`` service: a stream on a shared HTTP/2 connection instead of a pooled
HTTP/1.1 connection (Kong's ``grpc_pass``).

Only the step that gets an upstream "connection" differs (``UpstreamTries._connect`` branches here for a
``multiplexed`` service): a stream on a pooled HTTP/2 connection with room; else, when another exchange is opening a
connection to the same key, a stream on that one once it is up (its failure is this try's failure too; if its opener
left, this exchange connects itself); else a new connection through the service's connector (h2 prior knowledge, or
TLS with ALPN ``h2``). The stream then takes the HTTP/1.1 connection's place
(``H2UpstreamStream``), so writing the request, the timeouts, retries, failure lines, 502/504 in Kong's gRPC form and
the log phase are the ones of every exchange (rules 3 to 6 of ``proxy.exchange``).
"""

from __future__ import annotations

import asyncio
import functools
from typing import TYPE_CHECKING, Any

from gateway.proxy.exchange_base import DONE, guarded
from gateway.proxy.upstream_tries import UpstreamTries
from gateway.upstream.failures import UpstreamFailure
from gateway.upstream.h2.connect import SCHEMES
from gateway.upstream.h2.connection import H2UpstreamConnection

if TYPE_CHECKING:
    from gateway.upstream.target import ServiceTarget

__all__ = ["StreamTries"]


class StreamTries(UpstreamTries):
    """The HTTP/2 branch of the upstream tries (a base of ``proxy.relay.ResponseRelay``)."""

    __slots__ = ()

    def _open_stream(self, service: ServiceTarget, key: tuple[Any, ...]) -> None:
        """A stream for this try: on a pooled connection with room, on one being opened, or on a new one (a task)."""
        # grpc_pass sends the client's request target as it came (nginx's unparsed URI), not Kong's $upstream_uri
        self._upstream_uri = self.head.target
        self._lead = b""
        pool = self.state.pool.multiplexed
        h2_key = (service.protocol, key)
        stream = None if self._fresh_only else pool.stream(h2_key)
        self._fresh_only = False
        if stream is not None:
            service.connections.reused += 1
            self._use(stream)
            return
        opening = pool.opening(h2_key)
        if opening is not None:
            opening.waiters.append(functools.partial(self._h2_ready, key))
            return
        h2_conn = pool.connection(h2_key, SCHEMES[service.protocol])
        task = asyncio.ensure_future(self._open_h2(service, h2_conn))
        self._connect_task = task
        task.add_done_callback(functools.partial(self._h2_opened, h2_conn))

    async def _open_h2(
        self, service: ServiceTarget, up: H2UpstreamConnection
    ) -> H2UpstreamConnection | UpstreamFailure:
        """The connector, its failures as values (``UpstreamTries._open``, shared with HTTP/1.1)."""
        ip, port = self._peer
        return await self._open(service, ip, port, up)

    @guarded
    def _h2_opened(
        self, h2_conn: H2UpstreamConnection, task: asyncio.Future[H2UpstreamConnection | UpstreamFailure]
    ) -> None:
        """The connection this exchange opened is up (or not): use it, then hand it to the exchanges waiting for it."""
        self._connect_task = None
        pool = self.state.pool.multiplexed
        if task.cancelled():  # this exchange's client left during the connect: the waiters connect themselves
            pool.settle(h2_conn, None, abandoned=True)
            return
        result = task.result()
        if isinstance(result, UpstreamFailure):
            pool.settle(h2_conn, result)
            if self.stage != DONE:
                self._failed(result, reused=False)
            return
        opener = self.stage != DONE
        stream = result.open_stream(reused=False) if opener else None  # the opener's stream first
        pool.settle(result, None)
        if stream is not None:
            self._count_opened(stream)
            self._use(stream)
        elif not result.users:
            pool.idle(result)  # nobody is left to use it: the pool keeps it idle, or closes it

    @guarded
    def _h2_ready(self, key: tuple[Any, ...], result: H2UpstreamConnection | UpstreamFailure | None) -> None:
        """The connection another exchange was opening for this key is up, failed, or was abandoned (None)."""
        service = self._service
        if self.stage == DONE or service is None:
            return
        if isinstance(result, UpstreamFailure):
            self._failed(result, reused=False)
        elif result is None or not result.has_capacity():
            self._open_stream(service, key)
        else:
            service.connections.reused += 1
            self._use(result.open_stream(reused=False))
