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
import functools
from typing import TYPE_CHECKING

from gateway.downstream.client import ClientSide
from gateway.downstream.flow import BODY_HIGH_WATER, PAUSE_BUFFER
from gateway.observability.errorlog import request_context
from gateway.plugins import Exit, PluginContext, run_access
from gateway.proxy.access import forwarded, route_refusal, split_target
from gateway.proxy.exchange_base import DONE, RESPONDING, Stage, guarded
from gateway.proxy.lane import lane_for
from gateway.proxy.relay import ResponseRelay
from gateway.proxy.request_head import fixed_headers, forwarded_lines, lead_headers
from gateway.proxy.router import escape_path, header_map, normalize_path, upstream_uri_v0
from gateway.proxy.trace import DEBUG_REQUEST_HEADER
from gateway.proxy.upstream_tries import NON_IDEMPOTENT, REPLAY_LIMIT
from gateway.proxy.websocket import asks_websocket, upgrade_request

if TYPE_CHECKING:
    from gateway.downstream.request import RequestHead
    from gateway.plugins.chains import Chain
    from gateway.proxy.lane import Lane
    from gateway.proxy.router import Match
    from gateway.upstream.target import ServiceTarget

__all__ = ["NON_IDEMPOTENT", "REPLAY_LIMIT", "Exchange", "Stage", "new_exchange"]


class Exchange(ResponseRelay):
    """One request/response cycle of a downstream connection: what ``ProxyState.exchange_type`` makes per request.

    The request side lives here (body intake, routing and the access phase); the upstream tries, the response relay
    and the state with its generated answers and log phase are its bases, one module each.
    """

    __slots__ = ()

    # ================================================================== request intake (from the parser)
    def feed_body(self, data: bytes) -> None:
        self._body_bytes += len(data)
        max_body = self.conn.limits.max_body
        if max_body and self._body_bytes > max_body and self.stage < RESPONDING:
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
            up.arm_read_timer(self.conn.loop.time())

    def client_aborted(self) -> None:
        """The client connection is gone: drop the upstream side."""
        self._abort_upstream()
        if self.stage != DONE and self._handle is not None:
            service = self._service
            if service is not None and service.balancer is not None:
                service.balancer.release(self._handle)
        self.stage = DONE

    # ================================================================== routing (access phase)
    def begin(self) -> None:
        """Start processing: the connection calls this when the exchange reaches the head of its queue."""
        conn = self.conn
        state = self.state
        if self.snapshot is None:  # a resumed access phase (plugins waited) keeps its snapshot and start time
            self.snapshot = state.snapshot
            if self.start == 0.0:  # an HTTP/1.x connection set it (the request's first byte); an HTTP/2 stream not
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
        lane = match.lane
        if lane is not None and lane.raw_path == raw_path and not conn.peer_trusted and not state.debug_header:
            self._take_lane(match, lane, query_at)  # the common case, compiled by an earlier request (``lane``)
            return
        self._match = match
        if state.debug_header and head.get(DEBUG_REQUEST_HEADER) is not None:
            self._debug = True
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
            refusal = route_refusal(route, values, target, head.content_type, head.version == "2.0")
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
            self._no_connector(service.protocol)
            return

        lines = forwarded_lines(values)
        self._prepare_upstream(match, service, path, query_at, lines)
        if chain is None and not conn.peer_trusted and not state.debug_header and not router.uses_headers:
            host = head.host if route.preserve_host and head.host is not None else service.host_header
            refuses = route.https_only or route.grpc
            match.lane = lane_for(service, refuses, match.upstream_uri, raw_path, lines, host)
        self._pick_peer_and_connect()

    def _take_lane(self, match: Match, lane: Lane, query_at: int) -> None:
        """``begin`` for a request on a lane (``proxy.lane``): the upstream request from what the lane holds, then
        the connect; the same functions as the full path, with the values the full path derived kept."""
        conn = self.conn
        head = self.head
        service = lane.service
        self._match = match
        self._service = service
        self._upstream_uri = lane.uri if query_at == -1 else lane.uri + head.target[query_at:]
        self._tries_left = service.retries + 1
        self._host_header = lane.host_header
        if query_at == -1 and head.te is None and head.via is None and head.version == "1.1":
            lead = lane.lead
            if not lead:
                lead = lane.lead = lead_headers(head, lane.uri, lane.host_header)
            self._lead = lead
        upstream = fixed_headers(
            head, self.state.header_policy, conn.remote_addr, conn.peer_ip, self.request_id, lane.forwarded, None
        )
        if head.connection is not None and asks_websocket(head):
            upstream = upgrade_request(upstream)
        self._upstream_head = upstream
        host, port = service.host, service.port
        if service.host_is_ip:  # ``is_ip_literal(service.host)``, computed once per snapshot
            ip = host.strip("[]")
        else:
            first = self.state.dns.first_cached(host)
            if first is None:  # expired: the full path resolves, then connects
                self._pick_peer_and_connect()
                return
            ip = first
        self._connect(ip, port, lane.key if ip == lane.ip else lane.key_for(ip, port))

    def _prepare_upstream(self, match: Match, service: ServiceTarget, path: str, query_at: int, forwarded: str) -> None:
        """The upstream request line and the headers Kong sets, tries, balancer handle, profile notices (begin's
        second half, once routing and the access phase let the request through)."""
        conn = self.conn
        head = self.head
        target = head.target
        route = match.route
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
            self.state.header_policy,
            conn.remote_addr,
            conn.peer_ip,
            self.request_id,
            forwarded,
            plugins.upstream_headers if plugins is not None else None,
        )
        if head.connection is not None and asks_websocket(head):
            self._upstream_head = upgrade_request(self._upstream_head)
        balancer = service.balancer
        if balancer is not None and self._handle is None:
            self._new_balancer_handle(balancer, path, target[query_at + 1 :] if query_at != -1 else "")
        profile = service.tls_profile
        if profile is not None and profile.notices:
            self._log_notices(profile.notices)

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
            error_log=self.state.error_log,
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

    @guarded
    def _plugins_resumed(self, task: asyncio.Future[Exit | None]) -> None:
        self._connect_task = None
        if self.stage == DONE or task.cancelled():
            return
        self._access_done = True
        try:
            result = task.result()
        except Exception as exc:  # Kong: a plugin error becomes 500 "An unexpected error occurred"
            conn = self.conn
            self.state.error_log.error(f"plugin access phase failed: {exc!r}", conn.conn_id, self._context(None))
            self._plugin_exit(Exit.message(500, "An unexpected error occurred"))
            return
        if result is not None:
            self._plugin_exit(result)
            return
        self.begin()


def _plugin_log_context(conn: ClientSide, head: RequestHead, request_id: str) -> str:
    """``Exchange._context(None)`` for a plugin's log line, built only when a line is written."""
    return request_context(conn.remote_addr, head.request_line, None, head.host, request_id)


def new_exchange(conn: ClientSide, head: RequestHead) -> Exchange:
    """What ``ProxyState.exchange_type`` is: an ``Exchange`` for ``head``. A compiled function, so a connection's
    call is a vectorcall with the construction native inside; calling the class itself from a connection goes through
    ``type.__call__``, an argument tuple and the generic ``__init__`` wrapper (~400 instructions per request)."""
    return Exchange(conn, head)
