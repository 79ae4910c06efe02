"""An exchange's upstream tries: balancer pick, DNS, connect (or a pooled connection), writing the request, and
deciding, when a try fails, whether to retry or give the final 502/504 (rules 3, 4 and 6 of ``proxy.exchange``).
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar

from gateway.downstream.flow import PAUSE_BUFFER, PAUSE_PEER
from gateway.downstream.generated import CONTINUE_100
from gateway.observability.tls_metrics import TLS
from gateway.proxy.exchange_base import DONE, RESPONDING, ExchangeBase, guarded, to_ms
from gateway.proxy.request_head import lead_headers
from gateway.tls.engine.hostnames import is_ip_literal
from gateway.tls.upstream.connect import HandshakeFailure
from gateway.upstream.balancer import Balancer, NoPeerError
from gateway.upstream.connection import UpstreamConnection
from gateway.upstream.failures import Kind, Phase, UpstreamFailure
from gateway.upstream.service import pool_name
from gateway.upstream.target import ServiceTarget, host_header_for, pool_key

if TYPE_CHECKING:
    from gateway.upstream.pool import UpstreamPool

__all__ = ["NON_IDEMPOTENT", "REPLAY_LIMIT", "UpstreamTries", "is_ip"]


class _Abortable(Protocol):
    """What a try's connection must offer ``_open``: an abort when the connector failed midway."""

    def abort(self) -> None: ...


_Up = TypeVar("_Up", bound=_Abortable)

REPLAY_LIMIT: Final = 64 * 1024
NON_IDEMPOTENT: Final = frozenset(("POST", "LOCK", "PATCH"))


class UpstreamTries(ExchangeBase):
    """Balancer, connect and retries of one exchange (a base of ``proxy.exchange.Exchange``)."""

    __slots__ = ()

    # the upstream events (``upstream.events.UpstreamEvents``) are defined by ``proxy.relay.ResponseRelay``,
    # ``_open_stream`` by ``proxy.stream_tries``: real methods, not stubs under ``if TYPE_CHECKING`` (mypyc compiles
    # no statement but definitions in a class body)
    def _open_stream(self, service: ServiceTarget, key: tuple[Any, ...]) -> None:
        raise NotImplementedError

    def _record_replay(self, data: bytes) -> None:
        self._replay.append(data)
        if sum(len(c) for c in self._replay) > REPLAY_LIMIT:
            self._replay_ok = False
            self._replay = []

    def _no_connector(self, protocol: str) -> None:
        """A service protocol without a connector: a bug of ours, still answered (502) and logged."""
        conn = self.conn
        self.state.error_log.error(f"no connector for service protocol '{protocol}'", conn.conn_id, self._context(None))
        self._fail_final(UpstreamFailure(Kind.BUG, Phase.CONNECTING))

    def _log_notices(self, notices: tuple[tuple[str, str], ...]) -> None:
        """A TLS profile's notices (missing CA, unusable client certificate), logged per request as Kong's access phase
        does (rule 3)."""
        conn = self.conn
        log = self.state.error_log
        for level, text in notices:
            log.log(level, text, conn.conn_id, self._context(None))

    def _new_balancer_handle(self, balancer: Balancer, path: str, query: str) -> None:
        """The balancer's per-request state; with consistent hashing, the hash value from Kong's ``hash_on``."""
        handle = self._handle = balancer.new_handle(None)
        if not balancer.hashing:
            return
        match = self._match
        assert match is not None
        plugins = self._plugins
        consumer = plugins.consumer if plugins is not None else None
        handle.hash_value = balancer.hash_value(
            self.conn.remote_addr,
            self.head.get,
            path,
            query,
            match.captures,
            str(consumer["id"]) if consumer is not None and consumer.get("id") is not None else None,
            handle,
        )

    # ================================================================== balancer and connect
    def _pick_peer_and_connect(self) -> None:
        service = self._service
        assert service is not None
        conn = self.conn
        balancer = service.balancer
        try:
            if balancer is not None:
                if balancer.needs_dns(time.monotonic()):
                    refresh = balancer.refresh_dns(self.state.dns)  # in the background: stale addresses serve
                    if balancer.unresolved():  # nothing to serve meanwhile: this request waits for the answer
                        self._connect_task = refresh
                        refresh.add_done_callback(self._balancer_resolved)
                        return
                handle = self._handle
                assert handle is not None
                retry = handle.address is not None
                try:
                    address = balancer.get_peer(handle)
                except NoPeerError:
                    if retry:
                        self.state.error_log.error(
                            f"failed to retry the dns/balancer resolver for '{service.host}' with: "
                            "failure to get a peer from the ring-balancer",
                            conn.conn_id,
                            self._context(self._upstream_label()),
                        )
                        self._respond_error(503, proxied=True)
                        return
                    raise
                host, port = address.ip, address.port
                host_header = host_header_for(balancer.host_header or address.hostname, port, service.protocol)
            else:
                host, port, host_header = service.host, service.port, service.host_header
        except NoPeerError as exc:
            self._kong_error(exc.status, exc.message)
            return
        route = self._match.route if self._match is not None else None
        self._lead = b""
        if route is not None and route.preserve_host and self.head.host is not None:
            self._host_header = self.head.host
        else:
            self._host_header = host_header
        if balancer is not None or (service.host_is_ip and host == service.host) or is_ip(host):
            self._connect(host.strip("[]"), port)
            return
        first = self.state.dns.first_cached(host)
        if first is not None:
            self._connect(first, port)
            return
        task = asyncio.ensure_future(self.state.dns.resolve(host))
        self._connect_task = task
        task.add_done_callback(lambda t: self._resolved(t, port))

    @guarded
    def _balancer_resolved(self, task: asyncio.Future[None]) -> None:
        """The first resolution of an upstream's name targets is done: pick now (no address -> 503)."""
        self._connect_task = None
        if self.stage == DONE or task.cancelled():
            return
        exc = task.exception()
        if exc is not None:  # a resolver bug: answer instead of asking again forever
            conn = self.conn
            self.state.error_log.error(f"balancer DNS refresh failed: {exc!r}", conn.conn_id, self._context(None))
            self._kong_error(503, "failure to get a peer from the ring-balancer")
            return
        self._pick_peer_and_connect()

    @guarded
    def _resolved(self, task: asyncio.Future[list[str]], port: int) -> None:
        self._connect_task = None
        if self.stage == DONE:
            return
        try:
            addresses = task.result()
        except NoPeerError as exc:
            self.state.error_log.error(
                f"DNS resolution failed: {exc.detail}. Tried: {self._service.host if self._service else ''}",
                self.conn.conn_id,
                self._context(None),
            )
            self._kong_error(exc.status, exc.message)
            return
        except asyncio.CancelledError:
            return
        self._connect(addresses[0], port)

    def _connect(self, ip: str, port: int, key: tuple[Any, ...] | None = None) -> None:
        """A try to ``ip``: a pooled connection if one is idle, else a new one (``key``: the pool key, if known)."""
        service = self._service
        assert service is not None
        conn = self.conn
        self._peer = (ip, port)
        self._attempts += 1
        if key is None:
            key = pool_key(ip, port, self._host_header, service)
        if service.multiplexed:  # grpc/grpcs: a stream on a shared HTTP/2 connection (``proxy.stream_tries``)
            self._open_stream(service, key)
            return
        pool = self.state.pool
        up = None if self._fresh_only else pool.acquire(key)
        self._fresh_only = False
        if pool.size > 0 and self.state.debug_logging:
            self._debug_pool_acquire(pool, key, up)
        if up is not None:
            service.connections.reused += 1  # ``kong_upstream_connections_total{reused="true"}``
            self._use(up)
            return
        loop = conn.loop
        factory_conn = UpstreamConnection(loop, pool, key, self.state.tick_writes)
        task = asyncio.ensure_future(self._open(service, ip, port, factory_conn))
        self._connect_task = task
        task.add_done_callback(self._opened)

    async def _open(self, service: ServiceTarget, ip: str, port: int, up: _Up) -> _Up | UpstreamFailure:
        """The connector for one try (HTTP/1.1 or HTTP/2), its failures as values."""
        assert service.connect is not None
        try:
            await service.connect(self.conn.loop, up, ip, port, service, self._host_header)
        except TimeoutError:
            up.abort()
            return UpstreamFailure(Kind.TIMEOUT, Phase.CONNECTING)
        except HandshakeFailure as failure:
            self._tls_failure = failure
            error = failure.error
            TLS.upstream_failure(service.name or service.host, error.kind, error.reason, error.verify_code)
            kind = Kind.TIMEOUT if failure.timeout else Kind.TLS
            return UpstreamFailure(kind, Phase.HANDSHAKING, 0, failure.reason, failure.level)
        except OSError as exc:
            # asyncio rewrites strerror ("Connect call failed ..."): log the C library's text, as nginx does
            errno = exc.errno or 0
            return UpstreamFailure(Kind.ERROR, Phase.CONNECTING, errno, os.strerror(errno) if errno else str(exc))
        except Exception as bug:  # a connector bug must fail this try, never leave the request hanging
            up.abort()
            return UpstreamFailure(Kind.BUG, Phase.CONNECTING, 0, f"upstream connect failed ({bug!r})")
        return up

    @guarded
    def _opened(self, task: asyncio.Future[Any]) -> None:
        self._connect_task = None
        if task.cancelled():
            return
        result = task.result()
        if self.stage == DONE:
            if isinstance(result, UpstreamConnection):
                result.close()
            return
        if isinstance(result, UpstreamConnection):
            self._count_opened(result)
            self._use(result)
            return
        self._failed(result, reused=False)

    def _count_opened(self, up: UpstreamConnection) -> None:
        """A new upstream connection: ``kong_upstream_connections_total`` and, over TLS, whether it resumed."""
        service = self._service
        assert service is not None
        service.connections.new += 1
        label = service.name or service.host
        transport = up.transport
        info = transport.get_extra_info("tls") if transport is not None else None
        if info is not None:
            TLS.upstream_session(label, info.session_reused)

    def _use(self, up: UpstreamConnection) -> None:
        """Bind the connection, write the head and whatever body is buffered."""
        service = self._service
        assert service is not None
        transport = up.transport
        if up.closed or transport is None or transport.is_closing():
            # the peer closed (or reset) between the connect and now: nothing can be written (rule 6)
            ended = up.ended or UpstreamFailure(Kind.CLOSED, Phase.READING_HEADER)
            up.abort()
            self._failed(self._place(ended), reused=up.reused)
            return
        self._up = up
        up.bind(self, service.read_timeout, service.write_timeout, self.head.method == "HEAD")
        lead = self._lead
        if not lead:
            lead = lead_headers(self.head, self._upstream_uri, self._host_header)
        head_bytes = lead + self._upstream_head
        if not self._buffer and not self._replay and not self.head.chunked:
            # the common case, no body bytes (yet): one write (the TLS transport encrypts it without a join), at the
            # end of the tick (``UpstreamConnection.send_at_tick_end``)
            up.send_at_tick_end(head_bytes)
            self._sent()
            return
        pieces = [head_bytes]
        if self._replay and self._attempts > 1:
            pieces.extend(self._replay)  # a retry resends the body bytes the failed try already sent
        chunked = self.head.chunked
        for data in self._buffer:
            framed = b"%x\r\n%b\r\n" % (len(data), data) if chunked else data
            pieces.append(framed)
            if self._replay_ok:
                self._record_replay(framed)
        self._buffer = []
        if self._buffered:
            self._buffered = 0
            self.conn.flow.resume_reading(PAUSE_BUFFER)
        if self._body_done and chunked and self.head.has_body:
            pieces.append(b"0\r\n\r\n")
        up.send_many(pieces)
        self._sent()

    def _sent(self) -> None:
        """The request head (and what was buffered of the body) is written: wait for the response."""
        up = self._up
        assert up is not None
        self._request_sent = True
        now = self._sent_at = self.conn.clock()
        if self.head.expect_continue and not self._body_done and not self._continue_sent:
            self._continue_sent = True
            self.conn.write(CONTINUE_100)
        if self._body_done:
            up.arm_read_timer(now)
        if self.conn.flow.write_paused:
            self._pause_upstream_reading()

    def _place(self, failure: UpstreamFailure) -> UpstreamFailure:
        """Put a failure the connection reported (as ``READING_HEADER``) in the exchange's real phase (rule 6)."""
        if failure.phase is not Phase.READING_HEADER:
            return failure
        if self.stage >= RESPONDING:
            return failure.at(Phase.READING_BODY)
        if not self._body_done:
            return failure.at(Phase.SENDING)
        return failure

    def _pause_upstream_reading(self) -> None:
        up = self._up
        if up is not None:
            up.pause_reading()

    # ================================================================== failures and retries
    def _failed(self, failure: UpstreamFailure, reused: bool) -> None:
        conn = self.conn
        self.conn.flow.resume_reading(PAUSE_PEER)
        if failure.in_handshake:
            self._tls_error = failure.detail
        else:
            self._tls_failure = None
        self.state.error_log.log(failure.level, failure.text(), conn.conn_id, self._context(self._upstream_label()))
        if reused and failure.stale and self.head.method not in NON_IDEMPOTENT:
            # a keepalive connection the peer closed under us: does not use up a try
            self._fresh_only = True
            if self._can_replay():
                self._request_sent = False
                if self._handle is not None:
                    self._connect(*self._peer)  # same balancer address, fresh connection
                else:
                    self._pick_peer_and_connect()
                return
        self._tries_left -= 1
        retryable = failure.retryable and self._tries_left > 0
        if retryable and self._request_sent and self.head.method in NON_IDEMPOTENT:
            retryable = False
        if retryable and self._can_replay():
            self._request_sent = False
            handle = self._handle
            if handle is not None:
                # Kong's balancer phase reports the failed try to the passive health checker, then picks again
                balancer = self._service.balancer if self._service is not None else None
                if balancer is not None:
                    if failure.timeout:
                        balancer.report_timeout(handle)
                    else:
                        balancer.report_tcp_failure(handle)
            self._pick_peer_and_connect()
            return
        self._fail_final(failure)

    def _can_replay(self) -> bool:
        return self._replay_ok

    def _fail_final(self, failure: UpstreamFailure) -> None:
        status = 504 if failure.timeout else 502
        if not self._body_done:
            self._discarding = True
        now = self.conn.loop.time()
        upstream_latency = to_ms(now - self._sent_at) if self._sent_at else 0
        extra: tuple[tuple[str, str], ...] = ()
        if failure.in_handshake and self._tls_error is not None and self.state.settings.debug_tls_errors:
            extra = (("X-Gateway-TLS-Error", self._tls_error),)
        self._respond_error(status, proxied=True, upstream_latency_ms=upstream_latency, extra=extra)

    def _debug_pool_acquire(self, pool: UpstreamPool, key: tuple[Any, ...], up: UpstreamConnection | None) -> None:
        """Kong's balancer debug lines (``enabled connection keepalive``, ``keepalive reusing/no free``)."""
        log = self.state.error_log
        cid = self.conn.conn_id
        ctx = self._context(self._upstream_label())
        name = pool_name(key)
        log.debug(
            f"enabled connection keepalive (pool={name}, pool_size={pool.size}, "
            f"idle_timeout={pool.idle_timeout:g}, max_requests={pool.max_requests})",
            cid,
            ctx,
        )
        where = f"host: {self._peer[0]}:{self._peer[1]}, name: {name}"
        if up is not None:
            log.debug(f"lua balancer: keepalive reusing connection {id(up):X}, {where}, {id(pool):X}", cid, ctx)
        else:
            log.debug(f"lua balancer: keepalive no free connection, {where}", cid, ctx)


#: cached: a host name is checked on every request, and ``ip_address`` raises for each one that is not an IP
is_ip = functools.lru_cache(maxsize=1024)(is_ip_literal)
