"""One request through the proxy: route -> (generated answer | pooled upstream connection) -> stream both ways.

Theory of operation. An ``Exchange`` is created per request head by the downstream connection and is
driven entirely by callbacks: body bytes from the client (``feed_body``/``body_complete``), events from
the ``UpstreamConnection`` (``on_upstream_*``), flow-control from both transports. The only task is the
connect (plus DNS on a cache miss) when no idle pooled connection exists.

Rules:

1. Runloop order (``kong/runloop/handler.lua`` access phase): route (404 ``no Route matched with those
   values``), X-Forwarded-* from ``trusted_ips`` only, https-only route over http -> 426 or the
   configured redirect, gRPC checks, no service -> 503, balancer (503 on DNS/peer failure).
2. Upstream request: ``upstream_uri_v0`` on the normalized path, escaped, plus the raw query; headers in
   nginx's order: ``TE``, ``Via``, ``Host``, ``Connection: keep-alive``, ``X-Forwarded-*``,
   ``X-Real-IP``, ``X-Kong-Request-Id``, framing, then the client's headers minus hop-by-hop ones.
3. Retries as ``proxy_next_upstream error timeout`` with ``retries + 1`` tries: connect errors and
   timeouts, a close or reset before the response head, and read/write timeouts are retried; an
   invalid response head is not. Once the request was sent, POST/LOCK/PATCH are not retried (nginx's
   non-idempotent set). A failure on a *reused* keepalive connection does not use up a try and is
   retried on a fresh connection. A retry needs the body bytes already sent: they are kept up to
   ``REPLAY_LIMIT``; beyond that the request fails instead of retrying. Each failed try logs nginx's
   error line. Final failure: 502 (error) or 504 (timeout), with the proxied headers.
   A failed upstream TLS handshake is an error like a connect failure (retried): nginx's line ``upstream SSL
   certificate verify error: (20:...) while SSL handshaking to upstream`` (or ``does not match``,
   ``SSL_do_handshake() failed``...); with ``debug_tls_errors = on`` the final 502 carries the last reason in
   ``X-Gateway-TLS-Error``. A TLS profile's notices (missing CA, unusable client certificate) are logged once
   per request, as Kong's access phase does.
4. Streaming with backpressure: request body chunks go straight to the upstream transport; while it is
   paused, the client's reading pauses (``PAUSE_PEER``). Response chunks go straight to the client; while
   the client's transport is paused, the upstream connection stops reading. Before the upstream
   connection exists, body bytes are buffered up to ``BODY_HIGH_WATER`` and then reading pauses.
5. A response head, once written, cannot be taken back: a later upstream failure logs nginx's line for it
   (``upstream prematurely closed connection while reading upstream``, ``recv() failed (104: ...) while
   reading upstream``...) and closes the client connection.
6. Every way a try can fail is a ``failures.UpstreamFailure`` (kind + phase): the log line, 502/504, the
   retry and the passive health report are derived from it. The exchange places a failure the connection
   reported in its phase (``_place``): still sending the request, awaiting the head, or streaming the body.
   A connection that ended before it could be used (accepted and closed at once) fails the try like any
   other close, and no callback may leave the request hanging: whatever a try ends with, the client gets
   Kong's answer and its log line, and both sockets are released.
7. An exchange's progress is one ``Stage`` (proxying, responding, responded, done) that only moves forward,
   instead of flags that could disagree; what is still open on the request side (the body being read,
   dropped, or done) and on a try (written, paused) stays with the stage that needs it.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import ipaddress
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gateway.downstream.flow import BODY_HIGH_WATER, PAUSE_BUFFER, PAUSE_PEER
from gateway.downstream.generated import CONTINUE_100, render_generated
from gateway.downstream.request import new_request_id
from gateway.downstream.responses import (
    ERROR_MESSAGES,
    error_body,
    error_page_mime,
    response_mime,
)
from gateway.observability.errorlog import request_context
from gateway.observability.tls_metrics import TLS
from gateway.plugins import Exit, PluginContext, run_access, run_header_filter, run_log
from gateway.plugins.base import LogFacts
from gateway.proxy.access import Refusal, forwarded, route_refusal, split_target
from gateway.proxy.request_head import fixed_headers, lead_headers
from gateway.proxy.response_head import framing, scan_headers
from gateway.proxy.router import escape_path, header_map, normalize_path, upstream_uri_v0
from gateway.tls.upstream.connect import HandshakeFailure
from gateway.upstream.balancer import Balancer, Handle, NoPeerError
from gateway.upstream.connection import UpstreamConnection
from gateway.upstream.failures import Kind, Phase, UpstreamFailure
from gateway.upstream.service import ServiceTarget, host_header_for, pool_key, pool_name

if TYPE_CHECKING:
    from gateway.downstream.connection import HttpConnection
    from gateway.downstream.request import RequestHead
    from gateway.plugins.chains import Chain
    from gateway.proxy.router import Match
    from gateway.runtime.snapshot import Snapshot
    from gateway.upstream.pool import UpstreamPool

__all__ = ["REPLAY_LIMIT", "Exchange"]

REPLAY_LIMIT = 64 * 1024
NON_IDEMPOTENT = frozenset(("POST", "LOCK", "PATCH"))


class Stage(enum.IntEnum):
    """Where an exchange is on its way to the client; it only moves forward (rule 7)."""

    #: routing, the runloop's checks, the plugins' access phase (which may wait), then the upstream tries
    PROXYING = 0
    #: the response head is written: it cannot be taken back, a later failure closes the connection
    RESPONDING = 1
    #: the response is complete; what is left of the request body is read and dropped
    RESPONDED = 2
    #: logged and handed back to the connection (``exchange_finished``), or abandoned by the client
    DONE = 3


_PROXYING, _RESPONDING, _RESPONDED, _DONE = Stage


def _guarded(callback: Callable[..., None]) -> Callable[..., None]:
    """For the exchange's loop callbacks (connect, DNS, plugin tasks done): an exception there is a bug of ours, and
    must still end the request (``Exchange._crashed``), never leave it hanging with a traceback on stderr."""

    @functools.wraps(callback)
    def run(self: Exchange, *args: Any) -> None:
        try:
            callback(self, *args)
        except Exception as exc:
            self._crashed(exc)

    return run


def _ms(seconds: float) -> int:
    return int(seconds * 1000) if seconds > 0 else 0


class Exchange:
    """One request/response cycle of a downstream connection."""

    __slots__ = (
        "_access_done",
        "_attempts",
        "_body_bytes",
        "_body_done",
        "_buffer",
        "_buffered",
        "_chunked_out",
        "_close_after",
        "_connect_task",
        "_continue_sent",
        "_discarding",
        "_fresh_only",
        "_handle",
        "_head_at",
        "_head_bytes",
        "_host_header",
        "_match",
        "_peer",
        "_plugin_chain",
        "_plugins",
        "_replay",
        "_replay_ok",
        "_request_sent",
        "_sent_at",
        "_service",
        "_tls_error",
        "_tries_left",
        "_up",
        "_up_read_paused",
        "_upstream_head",
        "_upstream_uri",
        "bytes_sent",
        "conn",
        "head",
        "keep_alive",
        "request_id",
        "snapshot",
        "stage",
        "start",
        "status",
    )

    def __init__(self, conn: HttpConnection, head: RequestHead) -> None:
        self.conn = conn
        self.head = head
        self.snapshot: Snapshot | None = None
        self.request_id = new_request_id()
        self.start = 0.0
        self.status = 0
        self.bytes_sent = 0
        self.keep_alive = head.keep_alive
        self.stage = _PROXYING
        self._body_done = not head.has_body
        self._body_bytes = 0
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._discarding = False
        self._close_after = False
        self._continue_sent = False
        self._chunked_out = False
        self._match: Match | None = None
        self._service: ServiceTarget | None = None
        self._up: UpstreamConnection | None = None
        self._up_read_paused = False
        self._connect_task: asyncio.Future[Any] | None = None
        self._request_sent = False
        self._sent_at = 0.0
        self._head_at = 0.0  # the upstream's response head arrived (loop time), for the log phase
        self._head_bytes = 0  # response head bytes written, for the log phase
        self._attempts = 0
        self._tries_left = 0
        self._fresh_only = False
        self._handle: Handle | None = None  # the balancer's per-request state (upstream entities only)
        self._replay: list[bytes] = []
        self._replay_ok = True
        self._upstream_head = b""
        self._upstream_uri = "/"
        self._host_header = ""
        self._peer: tuple[str, int] = ("", 0)
        self._tls_error: str | None = None
        self._plugins: PluginContext | None = None
        self._plugin_chain: Chain | None = None
        self._access_done = False

    @property
    def response_started(self) -> bool:
        """The response head is on its way to the client (the connection's timers and aborts ask)."""
        return self.stage >= _RESPONDING

    # ================================================================== request intake (from the parser)
    def feed_body(self, data: bytes) -> None:
        self._body_bytes += len(data)
        max_body = self.conn.limits.max_body
        if max_body and self._body_bytes > max_body and self.stage < _RESPONDING:
            self._abort_upstream()
            self._discarding = True
            self._close_after = True
            self._respond_error(413)
            return
        if self._discarding:
            return
        up = self._up
        if up is not None and self._request_sent:
            framed = b"%x\r\n%b\r\n" % (len(data), data) if self.head.chunked else data
            up.send(framed)
            if self._replay_ok:
                self._record_replay(framed)
            return
        self._buffer.append(data)
        self._buffered += len(data)
        if self._buffered > BODY_HIGH_WATER:
            self.conn.flow.pause_reading(PAUSE_BUFFER)

    def body_complete(self) -> None:
        if self._body_done:
            return  # no body: ``_use`` armed the read timer when it wrote the head
        self._body_done = True
        if self._discarding:
            self._maybe_finish()
            return
        up = self._up
        if up is not None and self._request_sent:
            if self.head.chunked:
                up.send(b"0\r\n\r\n")
                if self._replay_ok:
                    self._record_replay(b"0\r\n\r\n")
            up.arm_read_timer()

    def _record_replay(self, data: bytes) -> None:
        self._replay.append(data)
        if sum(len(c) for c in self._replay) > REPLAY_LIMIT:
            self._replay_ok = False
            self._replay = []

    def client_aborted(self) -> None:
        """The client connection is gone: drop the upstream side."""
        self._abort_upstream()
        if self.stage != _DONE and self._handle is not None:
            service = self._service
            if service is not None and service.balancer is not None:
                service.balancer.release(self._handle)
        self.stage = _DONE

    # ================================================================== routing (access phase)
    def begin(self) -> None:
        """Start processing: the connection calls this when the exchange reaches the head of its queue."""
        conn = self.conn
        state = conn.state
        if self.snapshot is None:  # a resumed access phase (plugins waited) keeps its snapshot and start time
            self.snapshot = state.snapshot
            self.start = conn.loop.time()
        snapshot = self.snapshot
        head = self.head
        target = head.target
        raw_path, query_at = split_target(target)
        path = normalize_path(raw_path)
        router = snapshot.router
        match = router.match(
            head.method,
            path,
            head.host,
            conn.local_port,
            conn.https,
            conn.sni,
            header_map(head.headers) if router.uses_headers else None,
        )
        if match is None:
            self._kong_error(404, "no Route matched with those values")
            return
        self._match = match
        route = match.route
        values = forwarded(
            head.get if conn.peer_trusted else None,  # X-Forwarded-* from trusted peers only
            conn.https,
            conn.local_port,
            conn.host_var(head.host),
            raw_path,
            match.prefix,
        )
        if route.https_only or route.grpc:
            refusal = route_refusal(route, values, target, head.content_type)
            if refusal is not None:
                self._refuse(refusal)
                return
        chain = snapshot.plugins.chain(route.id)
        if chain is not None and not self._access_done and not self._run_plugins(chain, match):
            return  # a plugin answered, or is waiting (begin() runs again when it is done)
        service = match.service
        if service is None:
            self._kong_error(503, "no Service found with those values")
            return
        self._service = service
        if service.connect is None:
            conn.state.error_log.error(
                f"no connector for service protocol '{service.protocol}'", conn.conn_id, self._context(None)
            )
            self._fail_final(UpstreamFailure(Kind.BUG, Phase.CONNECTING))
            return

        # upstream request line and the headers Kong sets
        uri = match.upstream_uri
        if uri is None:
            uri = match.upstream_uri = escape_path(upstream_uri_v0(route.strip_path, match.prefix, path, service.path))
        if query_at != -1:
            uri += target[query_at:]
        self._upstream_uri = uri
        self._tries_left = service.retries + 1
        plugins = self._plugins
        self._upstream_head = fixed_headers(
            head,
            conn.state.header_policy,
            conn.remote_addr,
            conn.peer_ip,
            self.request_id,
            values,
            plugins.upstream_headers if plugins is not None else None,
        )
        balancer = service.balancer
        if balancer is not None and self._handle is None:
            self._new_balancer_handle(balancer, path, target[query_at + 1 :] if query_at != -1 else "")
        profile = service.tls_profile
        if profile is not None and profile.notices:
            log = conn.state.error_log
            for level, text in profile.notices:
                log.log(level, text, conn.conn_id, self._context(None))
        self._pick_peer_and_connect()

    def _refuse(self, refusal: Refusal) -> None:
        """Answer a route's refusal (``access.route_refusal``): Kong's error, or a redirect with an empty body."""
        if refusal.message is None:
            self._respond_generated(refusal.status, b"", None, extra=refusal.extra)
        else:
            self._kong_error(refusal.status, refusal.message, extra=refusal.extra)

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
                    refresh = balancer.refresh_dns(conn.state.dns)  # in the background: stale addresses serve
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
                        conn.state.error_log.error(
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
        if route is not None and route.preserve_host and self.head.host is not None:
            self._host_header = self.head.host
        else:
            self._host_header = host_header
        if balancer is not None or (service.host_is_ip and host == service.host) or _is_ip(host):
            self._connect(host.strip("[]"), port)
            return
        addresses = conn.state.dns.cached(host)
        if addresses is not None:
            self._connect(addresses[0], port)
            return
        task = asyncio.ensure_future(conn.state.dns.resolve(host))
        self._connect_task = task
        task.add_done_callback(lambda t: self._resolved(t, port))

    @_guarded
    def _balancer_resolved(self, task: asyncio.Future[None]) -> None:
        """The first resolution of an upstream's name targets is done: pick now (no address -> 503)."""
        self._connect_task = None
        if self.stage == _DONE or task.cancelled():
            return
        exc = task.exception()
        if exc is not None:  # a resolver bug: answer instead of asking again forever
            conn = self.conn
            conn.state.error_log.error(f"balancer DNS refresh failed: {exc!r}", conn.conn_id, self._context(None))
            self._kong_error(503, "failure to get a peer from the ring-balancer")
            return
        self._pick_peer_and_connect()

    @_guarded
    def _resolved(self, task: asyncio.Future[list[str]], port: int) -> None:
        self._connect_task = None
        if self.stage == _DONE:
            return
        try:
            addresses = task.result()
        except NoPeerError as exc:
            self.conn.state.error_log.error(
                f"DNS resolution failed: {exc.detail}. Tried: {self._service.host if self._service else ''}",
                self.conn.conn_id,
                self._context(None),
            )
            self._kong_error(exc.status, exc.message)
            return
        except asyncio.CancelledError:
            return
        self._connect(addresses[0], port)

    def _connect(self, ip: str, port: int) -> None:
        service = self._service
        assert service is not None
        conn = self.conn
        self._peer = (ip, port)
        self._attempts += 1
        key = pool_key(ip, port, self._host_header, service)
        pool = conn.state.pool
        up = None if self._fresh_only else pool.acquire(key)
        self._fresh_only = False
        if pool.size > 0 and conn.state.error_log.debug_enabled:
            self._debug_pool_acquire(pool, key, up)
        if up is not None:
            TLS.upstream_connection(service.name or service.host, True)
            self._use(up)
            return
        loop = conn.loop
        factory_conn = UpstreamConnection(loop, pool, key)
        task = asyncio.ensure_future(self._open(service, ip, port, factory_conn))
        self._connect_task = task
        task.add_done_callback(self._opened)

    async def _open(
        self, service: ServiceTarget, ip: str, port: int, up: UpstreamConnection
    ) -> UpstreamConnection | UpstreamFailure:
        assert service.connect is not None
        try:
            await service.connect(self.conn.loop, up, ip, port, service, self._host_header)
        except TimeoutError:
            up.abort()
            return UpstreamFailure(Kind.TIMEOUT, Phase.CONNECTING)
        except HandshakeFailure as failure:
            error = failure.error
            TLS.upstream_failure(service.name or service.host, error.kind, error.reason, error.verify_code)
            kind = Kind.TIMEOUT if failure.timeout else Kind.TLS
            return UpstreamFailure(kind, Phase.HANDSHAKING, 0, failure.reason, failure.level)
        except OSError as exc:
            # asyncio rewrites strerror ("Connect call failed ..."): log the C library's text, as nginx does
            errno = exc.errno or 0
            return UpstreamFailure(Kind.ERROR, Phase.CONNECTING, errno, os.strerror(errno) if errno else str(exc))
        except Exception as exc:  # a connector bug must fail this try, never leave the request hanging
            up.abort()
            return UpstreamFailure(Kind.BUG, Phase.CONNECTING, 0, f"upstream connect failed ({exc!r})")
        return up

    @_guarded
    def _opened(self, task: asyncio.Future[Any]) -> None:
        self._connect_task = None
        if task.cancelled():
            return
        result = task.result()
        if self.stage == _DONE:
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
        label = service.name or service.host
        TLS.upstream_connection(label, False)
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
        head_bytes = lead_headers(self.head, self._upstream_uri, self._host_header) + self._upstream_head
        if not self._buffer and not self._replay and not self.head.chunked:
            # the common case, no body bytes (yet): one write (the TLS transport encrypts it without a join)
            transport.write(head_bytes)
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
        transport.writelines(pieces)
        self._sent()

    def _sent(self) -> None:
        """The request head (and what was buffered of the body) is written: wait for the response."""
        up = self._up
        assert up is not None
        self._request_sent = True
        self._sent_at = self.conn.loop.time()
        if self.head.expect_continue and not self._body_done and not self._continue_sent:
            self._continue_sent = True
            self.conn.write(CONTINUE_100)
        if self._body_done:
            up.arm_read_timer()
        if self.conn.flow.write_paused:
            self._pause_upstream_reading()

    # ================================================================== upstream events
    def on_upstream_head(
        self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]], keep_alive: bool, chunked: bool
    ) -> None:
        conn = self.conn
        now = conn.loop.time()
        state = conn.state
        policy = state.header_policy
        head = self.head
        self.status = status
        self.stage = _RESPONDING
        self._head_at = now
        rest, content_type, content_length, has_via, has_server, has_date = scan_headers(headers, head.te, policy.via)
        framing_line, self._chunked_out, keep = framing(
            head.method, status, head.version, content_length, self.keep_alive and not conn.closing
        )
        self.keep_alive = keep
        front = b"HTTP/1.1 %d %b\r\n%b%b%b%b" % (
            status,
            reason,
            b"" if has_date else state.date.line(),
            b"" if content_type is None else b"Content-Type: " + content_type + b"\r\n",
            framing_line,
            b"Connection: keep-alive\r\n" if keep else b"Connection: close\r\n",
        )
        pick = policy.tail_values
        tail = policy.response_tails[has_via * 2 + has_server]
        if pick is not None:
            sent_at = self._sent_at
            tail = tail % pick((status, _ms(now - sent_at), _ms(sent_at - self.start), self.request_id.encode()))
        handle = self._handle
        cookie = handle.set_cookie if handle is not None else None  # hash_on = cookie
        plugins = self._plugins
        chain = self._plugin_chain
        if plugins is None or chain is None or not chain.has_header_filter:
            if cookie is None:  # the common case: the upstream's headers between the compiled front and tail
                data = b"".join((front, *rest, tail)) if rest else front + tail
                self._head_bytes = len(data)
                conn.write(data)
                return
            plugins = None
        parts = [front, *rest]
        if cookie is not None:
            parts.append(b"Set-Cookie: " + cookie.encode("latin-1") + b"\r\n")
        if plugins is None:
            parts.append(tail)
        else:
            parts.append(tail[:-2])  # the plugins' headers go before the blank line
            run_header_filter(plugins)
            for header, text in plugins.response_headers:
                parts.append(f"{header}: {text}\r\n".encode("latin-1"))
            parts.append(b"\r\n")
        data = b"".join(parts)
        self._head_bytes = len(data)
        conn.write(data)

    def on_upstream_body(self, data: bytes) -> None:
        if not data:
            return
        self.bytes_sent += len(data)
        if self._chunked_out:
            self.conn.write(b"%x\r\n%b\r\n" % (len(data), data))
        else:
            self.conn.write(data)

    def on_upstream_complete(self, keep_alive: bool) -> None:
        up = self._up
        self._up = None
        if self._chunked_out:
            self.conn.write(b"0\r\n\r\n")
        if up is not None:
            if self._up_read_paused:
                self._up_read_paused = False
                up.resume_reading()
            pool = self.conn.state.pool
            saved = pool.release(up, keep_alive and self._body_done and not self._discarding)
            if pool.size > 0 and self.conn.state.error_log.debug_enabled:
                self._debug_pool_release(pool, up, saved)
        self.stage = _RESPONDED
        if not self._body_done:
            # the upstream answered before the whole body arrived: read and drop the rest (and read at all: the
            # client was paused for the upstream's backpressure, which no longer exists)
            self._discarding = True
            self.conn.flow.resume_reading(PAUSE_PEER)
        self._maybe_finish()

    def on_upstream_trailing(self, text: str) -> None:
        """Bytes followed the complete response: the connection is closed, not pooled (nginx warns)."""
        conn = self.conn
        conn.state.error_log.log(
            "warn", f"{text} while {Phase.READING_BODY.value}", conn.conn_id, self._context(self._upstream_label())
        )

    def on_upstream_error(self, failure: UpstreamFailure) -> None:
        up = self._up
        self._up = None
        reused = up is not None and up.reused and not up.got_bytes
        if up is not None:
            up.abort()
        failure = self._place(failure)
        if self.stage >= _RESPONDING:
            self.conn.state.error_log.log(
                failure.level, failure.text(), self.conn.conn_id, self._context(self._upstream_label())
            )
            self.stage = _RESPONDED
            self.keep_alive = False
            self._close_after = True
            self.stage = _DONE
            if self._handle is not None:
                self._balancer_log()
            self.conn.exchange_finished(self, abort=True)
            return
        self._failed(failure, reused=reused)

    def _place(self, failure: UpstreamFailure) -> UpstreamFailure:
        """Put a failure the connection reported (as ``READING_HEADER``) in the exchange's real phase (rule 6)."""
        if failure.phase is not Phase.READING_HEADER:
            return failure
        if self.stage >= _RESPONDING:
            return failure.at(Phase.READING_BODY)
        if not self._body_done:
            return failure.at(Phase.SENDING)
        return failure

    def on_upstream_pause_writing(self) -> None:
        self.conn.flow.pause_reading(PAUSE_PEER)

    def on_upstream_resume_writing(self) -> None:
        self.conn.flow.resume_reading(PAUSE_PEER)

    # ================================================================== downstream flow control
    def on_client_pause_writing(self) -> None:
        self._pause_upstream_reading()

    def on_client_resume_writing(self) -> None:
        up = self._up
        if self._up_read_paused and up is not None:
            self._up_read_paused = False
            up.resume_reading()

    def _pause_upstream_reading(self) -> None:
        up = self._up
        if not self._up_read_paused and up is not None:
            self._up_read_paused = True
            up.pause_reading()

    # ================================================================== failures and retries
    def _failed(self, failure: UpstreamFailure, reused: bool) -> None:
        conn = self.conn
        self.conn.flow.resume_reading(PAUSE_PEER)
        if failure.in_handshake:
            self._tls_error = failure.detail
        conn.state.error_log.log(failure.level, failure.text(), conn.conn_id, self._context(self._upstream_label()))
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

    def _crashed(self, exc: Exception) -> None:
        """A bug in a callback of this exchange: log it at ``alert`` and still answer (500, or close mid-response)."""
        conn = self.conn
        conn.state.error_log.loop_exception(None, {"message": "request processing failed", "exception": exc})
        self._abort_upstream()
        if self.stage == _DONE:
            return
        if self.stage < _RESPONDING:
            self._close_after = True
            self._respond_error(500)
            return
        self.stage = _DONE
        self.keep_alive = False
        conn.exchange_finished(self, abort=True)

    def _can_replay(self) -> bool:
        return self._replay_ok

    def _fail_final(self, failure: UpstreamFailure) -> None:
        status = 504 if failure.timeout else 502
        if not self._body_done:
            self._discarding = True
        now = self.conn.loop.time()
        upstream_latency = _ms(now - self._sent_at) if self._sent_at else 0
        extra: tuple[tuple[str, str], ...] = ()
        if failure.in_handshake and self._tls_error is not None and self.conn.state.settings.debug_tls_errors:
            extra = (("X-Gateway-TLS-Error", self._tls_error),)
        self._respond_error(status, proxied=True, upstream_latency_ms=upstream_latency, extra=extra)

    def _abort_upstream(self) -> None:
        task = self._connect_task
        if task is not None:
            task.cancel()
            self._connect_task = None
        up = self._up
        self._up = None
        if up is not None:
            up.exchange = None
            up.abort()

    # ================================================================== plugins (access phase)
    def _run_plugins(self, chain: Chain, match: Match) -> bool:
        """Kong's collecting access phase for this route; True to go on proxying.

        A plugin's ``Exit`` is sent as ``kong.response.exit`` does. When a handler must wait (an OCSP/CRL fetch), the
        rest of the chain runs in a task (kept in ``_connect_task`` so a client abort cancels it) and ``begin()``
        runs again afterwards, on the same snapshot, with the access phase marked done.
        """
        conn = self.conn
        cache = conn.plugin_cache
        if cache is None:
            cache = conn.plugin_cache = {}
        service = match.service
        plugins = PluginContext(
            tls=conn.tls,
            conn_cache=cache,
            headers=self.head.headers,
            route_id=match.route.id,
            service_id=service.id if service is not None else None,
            error_log=conn.state.error_log,
            conn_id=conn.conn_id,
            # not a closure over the exchange: the exchange holds this context, and a cycle between them would leave
            # every request with plugins to the cyclic collector (measured: ~30 us per request under load)
            log_context=functools.partial(_plugin_log_context, conn, self.head, self.request_id),
        )
        self._plugins = plugins
        self._plugin_chain = chain
        result = run_access(chain, plugins)
        if result is None:
            self._access_done = True
            return True
        if isinstance(result, Exit):
            self._access_done = True
            self._plugin_exit(result)
            return False
        self._connect_task = result
        result.add_done_callback(self._plugins_resumed)
        return False

    @_guarded
    def _plugins_resumed(self, task: asyncio.Future[Exit | None]) -> None:
        self._connect_task = None
        if self.stage == _DONE or task.cancelled():
            return
        self._access_done = True
        try:
            result = task.result()
        except Exception as exc:  # Kong: a plugin error becomes 500 "An unexpected error occurred"
            conn = self.conn
            conn.state.error_log.error(f"plugin access phase failed: {exc!r}", conn.conn_id, self._context(None))
            self._plugin_exit(Exit.message(500, "An unexpected error occurred"))
            return
        if result is not None:
            self._plugin_exit(result)
            return
        self.begin()

    def _plugin_exit(self, result: Exit) -> None:
        if result.error is not None:
            self._kong_error(result.status, result.error, extra=result.headers)
            return
        self._respond_generated(result.status, result.body, result.content_type, extra=result.headers)

    # ================================================================== generated responses
    def _kong_error(self, status: int, message: str, extra: tuple[tuple[str, str], ...] = ()) -> None:
        """``kong.response.error``: template from Accept only (JSON by default)."""
        mime = response_mime(self.head.accept)
        body = error_body(mime, message, self.request_id)
        self._respond_generated(status, body, mime, extra=extra)

    def _respond_error(
        self,
        status: int,
        proxied: bool = False,
        upstream_latency_ms: int | None = None,
        extra: tuple[tuple[str, str], ...] = (),
    ) -> None:
        """nginx ``error_page`` -> Kong's error handler: Accept, then Content-Type, then error_default_type."""
        head = self.head
        conn = self.conn
        mime = error_page_mime(head.accept, head.content_type, conn.state.settings.error_default_type)
        body = error_body(mime, ERROR_MESSAGES[status], self.request_id)
        sent_status = 400 if status == 494 else status
        self._respond_generated(
            sent_status, body, mime, extra=extra, proxied=proxied, upstream_latency_ms=upstream_latency_ms
        )

    def _respond_generated(
        self,
        status: int,
        body: bytes,
        content_type: str | None,
        extra: tuple[tuple[str, str], ...] = (),
        proxied: bool = False,
        upstream_latency_ms: int | None = None,
    ) -> None:
        conn = self.conn
        if not self._body_done:
            self._discarding = True
            if self.head.expect_continue and not self._continue_sent:
                self._close_after = True  # the client waits for 100 and will never send the body
        keep = self.keep_alive and not conn.closing and not self._close_after
        self.keep_alive = keep
        now = conn.loop.time()
        latency = _ms((self._sent_at if proxied and self._sent_at else now) - self.start)
        data = render_generated(
            status,
            body,
            content_type,
            keep_alive=keep,
            policy=conn.state.header_policy,
            date=conn.state.date,
            request_id=self.request_id,
            latency_ms=latency,
            extra=extra,
            proxied=proxied,
            upstream_latency_ms=upstream_latency_ms,
            head_only=self.head.method == "HEAD",
        )
        self.status = status
        self.stage = _RESPONDING
        self.bytes_sent = len(body)
        self._head_bytes = len(data)  # the whole generated response (the log phase adds no body to it)
        conn.write(data)
        self.stage = _RESPONDED
        self._maybe_finish()

    def _balancer_log(self) -> None:
        """Kong's log phase for a proxied request: the final status to the passive checker, then release."""
        handle = self._handle
        service = self._service
        balancer = service.balancer if service is not None else None
        if handle is None or balancer is None or handle.address is None:
            return
        if self.status == 504:
            balancer.report_timeout(handle)
        else:
            balancer.report_http_status(handle, self.status)
        balancer.release(handle)

    def _maybe_finish(self) -> None:
        if self.stage == _RESPONDED and (self._body_done or self._close_after):
            self.stage = _DONE
            if self._handle is not None:
                self._balancer_log()
            plugins = self._plugins
            if plugins is not None and self._plugin_chain is not None and self._plugin_chain.has_log:
                plugins.log_facts = self._log_facts()
                run_log(plugins)
            self.conn.exchange_finished(self, abort=False)

    def _log_facts(self) -> LogFacts:
        """What the ``log`` phase reads (Kong's ``kong.log.serialize()``): only built for chains with a log phase."""
        return LogFacts(
            self.status,
            self._head_at > 0.0,
            self.start,
            self._sent_at,
            self._head_at,
            self.conn.loop.time(),
            self.head,
            self._body_bytes,
            self._head_bytes + (0 if self._head_at == 0.0 else self.bytes_sent),
        )

    # ================================================================== logging
    def _debug_pool_acquire(self, pool: UpstreamPool, key: tuple[Any, ...], up: UpstreamConnection | None) -> None:
        """Kong's balancer debug lines (``enabled connection keepalive``, ``keepalive reusing/no free``)."""
        log = self.conn.state.error_log
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

    def _debug_pool_release(self, pool: UpstreamPool, up: UpstreamConnection, saved: bool) -> None:
        """Kong's ``keepalive saving / not saving connection`` and ``free connection pool`` debug lines."""
        log = self.conn.state.error_log
        cid = self.conn.conn_id
        name = pool_name(up.key)
        where = f"host: {up.key[0]}:{up.key[1]}, name: {name}"
        if saved:
            log.debug(f"lua balancer: keepalive saving connection {id(up):X}, {where}, {id(pool):X}", cid)
            return
        log.debug(f"lua balancer: keepalive not saving connection {id(up):X}, {where}", cid)
        if pool.idle_count(up.key) == 0:
            log.debug(f'keepalive: free connection pool {id(pool):X} for "{name}"', cid)

    def _upstream_label(self) -> str:
        """nginx's ``upstream:`` for error lines (the current try's peer), built only when a line is logged."""
        service = self._service
        if not self._attempts or service is None:
            return ""
        ip, port = self._peer
        host_literal = f"[{ip}]" if ":" in ip else ip
        return f"{service.protocol}://{host_literal}:{port}{self._upstream_uri}"

    def _context(self, upstream: str | None) -> str:
        head = self.head
        return request_context(
            self.conn.remote_addr,
            head.request_line,
            upstream,
            head.host,
            self.request_id,
        )


def _plugin_log_context(conn: HttpConnection, head: RequestHead, request_id: str) -> str:
    """``Exchange._context(None)`` for a plugin's log line, built only when a line is written."""
    return request_context(conn.remote_addr, head.request_line, None, head.host, request_id)


@functools.lru_cache(maxsize=1024)
def _is_ip(host: str) -> bool:
    """Cached: a host name is checked on every request, and ``ip_address`` raises for each one that is not an IP."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True
