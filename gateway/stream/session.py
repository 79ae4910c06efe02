"""One stream connection, from accept to close: preread, route, (terminate), connect with tries, relay.

Theory of operation (Kong's ``nginx_kong_stream.lua`` server blocks and ``runloop/handler.lua`` ``preread``):

1. **Preread** (``ssl`` listeners only): the first bytes go to a ``ClientHelloReader`` until it has a verdict, for
   at most ``PREREAD_TIMEOUT`` (nginx's ``preread_timeout``). A plain listener routes at accept, with no SNI.
2. **Route** on the current snapshot's ``StreamRouter`` with the scheme ``tls`` (a ClientHello was read; its SNI,
   possibly ``""``) or ``tcp``, the client address and the listener's address. No route: Kong's
   ``no Route found with those values`` at ``error``, and the connection is closed (Kong's ``exit(500)``).
3. **Decide** on an ``ssl`` listener (Kong's preread block): a route with ``tls`` terminates TLS here with the
   certificate the proxy listeners would serve for that SNI (``gateway.tls.served``: one index, one lookup order;
   no client certificate is requested: mtls-auth does not run on stream routes, and Kong's stream server block has
   no ``ssl_verify_client``); a ``tls_passthrough`` route forwards the bytes, ClientHello included, untouched;
   anything else is ``unexpected protocols in matched Route`` (closed). On a plain listener every match relays bytes.
4. **Connect** (``gateway.stream.upstream``) once the client is ready (the handshake done, for termination):
   tries over the balancer or the service host, each failure logged with nginx's stream context, retried up to the
   service's ``retries``; when none succeeds the client connection is closed (nginx's 502 status).
5. **Relay** (``gateway.stream.relay``) until both directions have ended, or a socket is gone, or nothing has moved
   for the service's proxy timeout (the larger of ``read_timeout`` and ``write_timeout``: OpenResty's stream balancer
   maps both onto nginx's single ``proxy_timeout``).

Log lines are nginx's: ``<what> while <action>, client: <ip>, server: <listen address>`` and, once the proxy phase
has begun, ``, upstream: "<ip:port>", bytes from/to client:<in>/<out>, bytes from/to upstream:<in>/<out>``; the end
of a session is ``client disconnected, bytes from/to client:.., bytes from/to upstream:..`` (or ``upstream``) at
``info``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, Protocol

from gateway.stream.clienthello import ClientHelloReader, Outcome, Preread
from gateway.stream.relay import Endpoint, Relay
from gateway.stream.upstream import PeerPicker, client_ip_of, no_peer_text, open_peer
from gateway.tls.engine.session import TlsError, TlsHandshakeError
from gateway.tls.engine.transport import TlsProtocol
from gateway.upstream.dns import NoPeerError
from gateway.upstream.failures import UpstreamFailure

if TYPE_CHECKING:
    from OpenSSL import SSL

    from gateway.proxy.state import ProxyState
    from gateway.stream.router import StreamRoute

__all__ = ["HANDSHAKE_TIMEOUT", "PREREAD_TIMEOUT", "StreamSession"]


class StreamListener(Protocol):
    """What a session needs of its ``stream_listen`` entry (``gateway.stream.listener.StreamListener``), named here
    so that the listener, which creates sessions, is the only one of the two that imports the other."""

    state: ProxyState
    ssl: bool
    server_addr: str
    context: SSL.Context | None

    def next_conn_id(self) -> int: ...


#: nginx's ``preread_timeout`` default
PREREAD_TIMEOUT: Final = 30.0
#: nginx's stream ``ssl_handshake_timeout`` default
HANDSHAKE_TIMEOUT: Final = 60.0

_PREREAD = "prereading client data"
#: nginx's stream statuses, which Kong reports to the passive health checker at the end of a connection
OK, BAD_REQUEST, INTERNAL_ERROR, BAD_GATEWAY, UNAVAILABLE = 200, 400, 500, 502, 503


def _returning(endpoint: Endpoint) -> Callable[[], Endpoint]:
    return lambda: endpoint


def _address(name: Any) -> str:
    """``ip:port`` (``[ip]:port`` for IPv6) of a socket address, as nginx prints one."""
    if not isinstance(name, tuple) or len(name) < 2:
        return "unix:"
    host = f"[{name[0]}]" if ":" in str(name[0]) else str(name[0])
    return f"{host}:{name[1]}"


class StreamSession(asyncio.Protocol, Relay):
    """The accepted socket's first protocol (preread), then the relay's coordinator (see the module docstring)."""

    __slots__ = (
        "_done",
        "_last",
        "_loop",
        "_picker",
        "_preserved",
        "_proxying",
        "_reader",
        "_task",
        "_timer",
        "client",
        "client_ip",
        "conn_id",
        "listener",
        "raw",
        "route",
        "upstream",
        "upstream_label",
    )

    def __init__(self, listener: StreamListener) -> None:
        self.listener = listener
        self.raw: Any = None
        self.conn_id = 0
        self.client_ip = ""
        self.route: StreamRoute | None = None
        self.client: Endpoint | None = None
        self.upstream: Endpoint | None = None
        self.upstream_label: str | None = None
        self._reader: ClientHelloReader | None = None
        self._picker: PeerPicker | None = None
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._last = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        #: the client's SNI when a ``preserve_host`` route was matched by it (the upstream's ``$upstream_host``)
        self._preserved: str | None = None
        self._proxying = False
        self._done = False

    # ================================================================== accept and preread (raw callbacks)
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.raw = transport
        self._loop = asyncio.get_running_loop()
        listener = self.listener
        self.conn_id = listener.next_conn_id()
        peer = transport.get_extra_info("peername")
        self.client_ip = client_ip_of(peer)
        log = listener.state.error_log
        if log.info_enabled:  # nginx's ``ngx_stream_init_connection`` line
            log.info(f"client {_address(peer)} connected to {listener.server_addr}", self.conn_id)
        listener.state.pending.add(self)  # a drain waits for the session, as nginx's quit waits for stream sessions
        if listener.ssl:
            self._reader = ClientHelloReader()
            self._timer = self._loop.call_later(PREREAD_TIMEOUT, self._preread_timed_out)
        else:
            self._route(tls=False, sni=None, buffered=b"")

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        if reader is None or self._done:
            return
        verdict = reader.feed(data)
        if verdict.outcome is Outcome.MORE:
            return
        self._reader = None
        self._cancel_timer()
        if verdict.outcome in (Outcome.MALFORMED, Outcome.TOO_LARGE):
            self._refuse_preread(verdict)
        elif verdict.outcome is Outcome.NOT_TLS:
            self._route(tls=False, sni=None, buffered=reader.buffered)
        else:
            self._route(tls=True, sni=verdict.sni, buffered=reader.buffered)

    def eof_received(self) -> bool:
        return False  # before a verdict: nginx ends the session without a line

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish(OK if self._reader is None else BAD_REQUEST, quiet=True)

    def shutdown(self) -> None:
        """The process drains: a stream session runs to its end (bounded by the drain timeout), as in nginx."""

    def _refuse_preread(self, verdict: Preread) -> None:
        if verdict.outcome is Outcome.TOO_LARGE:
            self._log("error", "preread buffer full", _PREREAD)
        else:
            self._log("info", f"ssl preread: malformed ClientHello ({verdict.reason})", _PREREAD)
        self._abort_client()
        self._finish(BAD_REQUEST, quiet=True)

    def _preread_timed_out(self) -> None:
        self._timer = None
        if self._reader is not None and not self._done:
            self._reader = None
            self._log("info", "client timed out (110: Connection timed out)", _PREREAD)
            self._abort_client()
            self._finish(BAD_REQUEST, quiet=True)

    # ================================================================== routing
    def _route(self, tls: bool, sni: str | None, buffered: bytes) -> None:
        listener = self.listener
        router = listener.state.snapshot.stream_router
        peer = self.raw.get_extra_info("peername")
        sock = self.raw.get_extra_info("sockname")
        route = None
        if router is not None and isinstance(peer, tuple) and isinstance(sock, tuple):
            route = router.match(tls, sni, peer[0], peer[1], sock[0], sock[1])
        if route is None:
            self._fail_preread("no Route found with those values")
            return
        self.route = route
        if route.preserve_host and sni:
            self._preserved = sni
        if route.service is None:
            self._fail_preread("no Service found with those values")
            return
        if listener.ssl and route.terminate:
            self._terminate(buffered)
        elif listener.ssl and not route.passthrough:
            self._fail_preread("unexpected protocols in matched Route")
        else:
            self._relay_raw(buffered)

    def _fail_preread(self, message: str) -> None:
        self._log("error", message, _PREREAD)
        self._close_client()
        self._finish(INTERNAL_ERROR, quiet=True)

    def _relay_raw(self, buffered: bytes) -> None:
        """Plain and passthrough: the socket becomes the client endpoint; the preread bytes go first."""
        raw = self.raw
        client = self.client = Endpoint(self, "client")
        client.transport = client.raw = raw
        raw.set_protocol(client)
        client.received = len(buffered)
        client.hold(buffered)
        self._start_connect()

    def _terminate(self, buffered: bytes) -> None:
        """A ``tls`` route: the handshake runs on the listener's context (its SNI callback picks the certificate)."""
        raw = self.raw
        client = self.client = Endpoint(self, "client")
        client.raw = raw
        context = self.listener.context
        assert context is not None, "an ssl stream listener has its context"
        tls = client.tls = TlsProtocol(
            context,
            lambda: client,
            server_side=True,
            handshake_timeout=HANDSHAKE_TIMEOUT,
            on_handshake_error=self._handshake_failed,
        )
        raw.set_protocol(tls)
        tls.connection_made(raw)
        tls.data_received(buffered)

    def _handshake_failed(self, exc: TlsHandshakeError, peer: Any) -> None:
        if exc.kind == "timeout":
            what = "client timed out (110: Connection timed out)"
        elif exc.kind == "eof":
            what = exc.reason  # peer closed connection in SSL handshake
        else:
            what = f"SSL_do_handshake() failed (SSL: {exc.reason})"
        self._log("info", what, "SSL handshaking")
        self._finish(BAD_REQUEST, quiet=True)

    # ================================================================== connecting
    def endpoint_connected(self, endpoint: Endpoint) -> None:
        if endpoint is self.client and endpoint.tls is not None:
            self._start_connect()  # the client's handshake is complete

    def _start_connect(self) -> None:
        if self._done or self._task is not None:
            return
        self._proxying = True
        self._task = asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        route = self.route
        assert route is not None and route.service is not None
        service = route.service
        state = self.listener.state
        if service.tls_profile is not None:
            for level, message in service.tls_profile.notices:
                self._log(level, message, "connecting to upstream")
        picker = self._picker = PeerPicker(service, state.dns, self.client_ip, self._preserved)
        loop = asyncio.get_running_loop()
        retry = False
        while True:
            try:
                ip, port, upstream_host = await picker.next()
            except NoPeerError as exc:
                if retry:
                    text = f"failed to retry the dns/balancer resolver for '{service.host}' with: {exc.message}"
                else:
                    text = no_peer_text(exc, service.host)
                self._log("error", text, "connecting to upstream")
                self._close_client()
                self._finish(UNAVAILABLE if not retry else BAD_GATEWAY, quiet=True)
                return
            self.upstream_label = _address((ip, port))
            upstream = Endpoint(self, "upstream")
            result = await open_peer(loop, _returning(upstream), ip, port, service, upstream_host)
            if self._done:
                if not isinstance(result, UpstreamFailure):
                    result.raw.close()
                return
            if isinstance(result, UpstreamFailure):
                state.error_log.log(result.level, result.text(), self.conn_id, self._context())
                retry = True
                if picker.failed(result):
                    continue
                self._close_client()
                self._finish(BAD_GATEWAY, quiet=True)
                return
            upstream.raw, upstream.tls = result.raw, result.tls
            log = state.error_log
            if log.info_enabled:  # nginx's ``ngx_stream_proxy_init_upstream`` line
                local = _address(result.raw.get_extra_info("sockname"))
                log.info(f"proxy {local} connected to {self.upstream_label}", self.conn_id)
            self._wire(upstream)
            return

    def _wire(self, upstream: Endpoint) -> None:
        client = self.client
        assert client is not None
        self.upstream = upstream
        self._task = None
        client.wire(upstream)
        upstream.wire(client)
        loop = asyncio.get_running_loop()
        self._last = loop.time()
        self._timer = loop.call_later(self._idle_timeout(), self._idle_check)
        if client.eof:
            upstream.write_eof()
        if upstream.eof:
            client.write_eof()
        if client.closed or upstream.closed:
            self._finish(OK, last=client if client.closed else upstream)
        else:
            self._maybe_done(upstream)

    # ================================================================== relaying (Endpoint callbacks)
    def touch(self) -> None:
        loop = self._loop
        if loop is not None:
            self._last = loop.time()

    def endpoint_eof(self, endpoint: Endpoint) -> None:
        peer = endpoint.peer
        if peer is None:
            return  # not wired yet: ``_wire`` passes it on
        peer.write_eof()
        self._maybe_done(endpoint)

    def endpoint_lost(self, endpoint: Endpoint, exc: Exception | None) -> None:
        if self._done:
            return
        if exc is not None and endpoint.peer is not None:
            self._log_read_error(endpoint, exc)
        if endpoint is not self.client and endpoint.peer is None:
            return  # an upstream not wired yet (a try under way): ``_wire`` notices that it is gone
        self._finish(OK, last=endpoint)

    def _maybe_done(self, last: Endpoint) -> None:
        client, upstream = self.client, self.upstream
        if client is not None and upstream is not None and client.eof and upstream.eof:
            self._finish(OK, last=last)

    def _log_read_error(self, endpoint: Endpoint, exc: Exception) -> None:
        action = f"proxying and reading from {endpoint.name}"
        level = "info" if endpoint.name == "client" else "error"
        if isinstance(exc, OSError) and exc.errno:
            self._log(level, f"recv() failed ({exc.errno}: {os.strerror(exc.errno)})", action)
        elif isinstance(exc, TlsError):
            self._log(level, f"SSL_read() failed (SSL: error:SSL routines::{exc.reason})", action)

    def _idle_timeout(self) -> float:
        service = self.route.service if self.route is not None else None
        if service is None:
            return 60.0
        return max(service.read_timeout, service.write_timeout)

    def _idle_check(self) -> None:
        self._timer = None
        if self._done:
            return
        loop = asyncio.get_running_loop()
        remaining = self._last + self._idle_timeout() - loop.time()
        if remaining > 0:
            self._timer = loop.call_later(remaining, self._idle_check)
            return
        self._log("info", "connection timed out (110: Connection timed out)", "proxying connection")
        self._finish(OK, quiet=True)

    # ================================================================== the end
    def _finish(self, status: int, last: Endpoint | None = None, quiet: bool = False) -> None:
        """Once: stop the timers and the connect task, close both sides (after their buffered bytes), log the end,
        report the status to the passive health checker, leave the drain set."""
        if self._done:
            return
        self._done = True
        self._reader = None
        self._cancel_timer()
        task = self._task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
        self._task = None
        if not quiet and last is not None and self.upstream is not None:
            log = self.listener.state.error_log
            if log.info_enabled:
                log.info(f"{last.name} disconnected{self._bytes()}", self.conn_id)
        if self._picker is not None:
            self._picker.finish(status)
        for endpoint in (self.upstream, self.client):
            if endpoint is not None:
                endpoint.close()
        if self.client is None and self.raw is not None:
            self.raw.close()
        self.listener.state.settle_pending(self)

    def _close_client(self) -> None:
        if self.client is not None:
            self.client.close()
        elif self.raw is not None:
            self.raw.close()

    def _abort_client(self) -> None:
        if self.raw is not None:
            self.raw.abort()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # ================================================================== log lines
    def _bytes(self) -> str:
        client, upstream = self.client, self.upstream
        return (
            f", bytes from/to client:{client.received if client else 0}/{client.sent if client else 0}"
            f", bytes from/to upstream:{upstream.received if upstream else 0}/{upstream.sent if upstream else 0}"
        )

    def _context(self) -> str:
        """nginx's ``ngx_stream_log_error`` suffix, plus the proxy module's once the proxy phase has begun."""
        text = f", client: {self.client_ip}, server: {self.listener.server_addr}"
        if self._proxying:
            if self.upstream_label is not None:
                text += f', upstream: "{self.upstream_label}"'
            text += self._bytes()
        return text

    def _log(self, level: str, what: str, action: str) -> None:
        log = self.listener.state.error_log
        if log.enabled(level):
            log.log(level, f"{what} while {action}", self.conn_id, self._context())
