"""The upstream side: compiled services, the connect step, and one HTTP/1.1 client connection protocol.

Rules:

1. ``ServiceTarget`` is a service row compiled once per snapshot: timeouts in seconds, the scheme,
   the default Host header, the balancer (when ``host`` names an Upstream entity), the ``connect`` hook
   and ``pool_identity``. Requests never read the row.
2. The connect step is a hook, chosen per service by protocol from ``CONNECTORS``: plain HTTP uses
   ``connect_plain`` (``loop.create_connection``), ``https`` (and stream ``tls``) use ``connect_tls`` (the TLS
   engine, ``gateway.tls.upstream.connect``). A connector connects the given ``UpstreamConnection`` to ``ip:port`` and
   owns the connect timeout (so TLS can tell "while connecting" from "while SSL handshaking"); it gets
   ``upstream_host`` (nginx's ``$upstream_host``: the Host header sent, from which SNI and the host check
   derive). ``pool_key`` keys the keepalive pool: ``(ip, port)`` for plain HTTP, and for TLS
   ``(ip, port, upstream_host, *tls_profile.identity)`` - the complete, content-based TLS identity.
3. ``UpstreamConnection`` never decides anything: it parses responses with httptools and reports every
   event to its current ``exchange`` (``on_upstream_*``), failures as ``failures.UpstreamFailure`` values.
   When idle (in the pool) any byte or EOF from the peer marks it dead and removes it, so a closed
   connection is never handed out; a connection that ends *before* an exchange is bound to it (the peer
   accepted and closed at once) keeps how it ended in ``ended``, for the exchange to report when it comes.
5. A connection goes back to the pool only when the response's framing leaves it in a known state: the
   response ends where its framing says, and not one byte follows it. A response is therefore completed
   after the whole read that ended it has been parsed (``_completed``), not inside the parser's callback:
   anything the parser meets after the end (the start of another message, garbage, body bytes after a HEAD
   response or beyond ``Content-Length``) marks the connection ``_trailing`` and it is closed, with nginx's
   warning (``upstream sent more data than specified in "Content-Length" header`` / ``upstream sent data
   after final chunk``). A body delimited by the connection's close ends it anyway.
4. One read-timeout timer per connection: a deadline moved forward on every read, a single
   ``call_at`` handle re-armed only when it fires early (lesson 10). The handle outlives the request: the
   next request on the pooled connection moves the deadline instead of cancelling and creating a timer
   (``_read_deadline == 0`` means "not armed"; a handle that fires then is dropped). The pool's idle
   timeout works the same way (``idle_deadline``, see ``pool.py``). The write timeout runs only while
   the transport's buffer is above its high-water mark.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import httptools

from gateway.proxy.failures import Kind, Phase, UpstreamFailure, from_exception
from gateway.tls.upstream.connect import open_upstream_tls
from gateway.tls.upstream.profile import UpstreamTlsProfile, identity_label

if TYPE_CHECKING:
    from gateway.proxy.balancer import Balancer
    from gateway.proxy.pool import UpstreamPool

__all__ = [
    "CONNECTORS",
    "Connector",
    "OutputSink",
    "ServiceTarget",
    "UpstreamConnection",
    "UpstreamEvents",
    "connect_plain",
    "connect_tls",
    "pool_key",
    "pool_name",
]

Connector = Callable[
    [asyncio.AbstractEventLoop, "UpstreamConnection", str, int, "ServiceTarget", str],
    Awaitable[tuple[asyncio.BaseTransport, asyncio.BaseProtocol]],
]


async def connect_plain(
    loop: asyncio.AbstractEventLoop,
    up: UpstreamConnection,
    ip: str,
    port: int,
    service: ServiceTarget,
    upstream_host: str,
) -> tuple[asyncio.BaseTransport, asyncio.BaseProtocol]:
    """TCP connect for ``http`` services, bounded by the service's connect timeout (raises ``TimeoutError``)."""
    async with asyncio.timeout(service.connect_timeout):
        return await loop.create_connection(lambda: up, ip, port)


async def connect_tls(
    loop: asyncio.AbstractEventLoop,
    up: UpstreamConnection,
    ip: str,
    port: int,
    service: ServiceTarget,
    upstream_host: str,
) -> tuple[asyncio.BaseTransport, asyncio.BaseProtocol]:
    """TCP connect + TLS handshake for ``https``/``tls`` services under the service's compiled TLS profile.

    The connect timeout covers both steps (nginx's ``proxy_connect_timeout``). With session reuse on, the
    session cached for this exact pool key is offered, and the connection's own session is stored after its
    first complete response (``release_hook``): only connections that passed their checks get that far.

    Raises:
        gateway.tls.upstream.connect.HandshakeFailure: the handshake or its checks failed, or timed out.
        OSError: the TCP connect failed (``TimeoutError`` on timeout).
    """
    profile = service.tls_profile
    assert profile is not None, "connect_tls needs a service compiled with a TLS profile"
    pool = up.pool
    sessions = pool.sessions if profile.session_reuse and pool is not None else None
    session = sessions.get(up.key, profile.context) if sessions is not None else None
    transport, protocol = await open_upstream_tls(
        loop, lambda: up, ip, port, profile, upstream_host, service.connect_timeout, session
    )
    if sessions is not None:
        key = up.key
        context = profile.context

        def save_session(conn: UpstreamConnection) -> None:
            sessions.put(key, context, transport.get_ssl_session())

        up.release_hook = save_session
    return transport, protocol


CONNECTORS: dict[str, Connector] = {"http": connect_plain, "https": connect_tls, "tls": connect_tls}


def pool_key(ip: str, port: int, upstream_host: str, service: ServiceTarget) -> tuple[Any, ...]:
    """The keepalive-pool (and TLS session) key of one try: see rule 2."""
    identity = service.pool_identity
    if not identity:
        return (ip, port)
    return (ip, port, upstream_host, *identity)


def pool_name(key: tuple[Any, ...]) -> str:
    """Kong's pool name for debug logs: ``ip|port`` or ``ip|port|host|verify|depth|CAs|client cert``."""
    if len(key) == 2:
        return f"{key[0]}|{key[1]}"
    return f"{key[0]}|{key[1]}|{key[2]}|{identity_label(key[3:])}"


_DEFAULT_PORTS = {"http": 80, "https": 443, "grpc": 80, "grpcs": 443}


class ServiceTarget:
    """A service row compiled for the hot path."""

    __slots__ = (
        "balancer",
        "connect",
        "connect_timeout",
        "enabled",
        "host",
        "host_header",
        "host_is_ip",
        "id",
        "name",
        "path",
        "pool_identity",
        "port",
        "protocol",
        "read_timeout",
        "retries",
        "row",
        "tls_profile",
        "write_timeout",
    )

    def __init__(
        self,
        row: Mapping[str, Any],
        balancer: Balancer | None,
        connect: Connector | None,
        host_is_ip: bool,
        pool_identity: tuple[Any, ...] = (),
        tls_profile: UpstreamTlsProfile | None = None,
    ) -> None:
        self.row = row
        self.id: str = row["id"]
        self.name: str | None = row.get("name")
        self.protocol: str = row.get("protocol") or "http"
        self.host: str = row["host"]
        port = row.get("port")
        self.port: int = int(port) if port is not None else _DEFAULT_PORTS.get(self.protocol, 80)
        self.path: str = row.get("path") or "/"
        retries = row.get("retries")
        self.retries: int = int(retries) if retries is not None else 5
        self.connect_timeout: float = int(row.get("connect_timeout") or 60000) / 1000.0
        self.write_timeout: float = int(row.get("write_timeout") or 60000) / 1000.0
        self.read_timeout: float = int(row.get("read_timeout") or 60000) / 1000.0
        self.enabled: bool = row.get("enabled", True) is not False
        self.balancer = balancer
        self.connect = connect  # None: no connector for this protocol (answered with 502)
        self.host_is_ip = host_is_ip
        self.pool_identity = pool_identity
        self.tls_profile = tls_profile
        #: the Host header sent to ``host:port`` (services without a balancer), compiled once, not per request
        self.host_header = host_header_for(self.host, self.port, self.protocol)


def host_header_for(hostname: str, port: int, scheme: str) -> str:
    """``set_host_header``: ``:port`` unless it is the scheme's default port."""
    if (port == 80 and scheme in ("http", "grpc")) or (port == 443 and scheme in ("https", "grpcs")):
        return hostname
    return f"{hostname}:{port}"


class OutputSink(Protocol):
    """The downstream connection an exchange answers on, as far as the upstream side needs it: write batching."""

    def cork(self) -> bool: ...

    def uncork(self) -> None: ...


class UpstreamEvents(Protocol):
    """What an ``UpstreamConnection`` reports to the exchange using it."""

    @property
    def conn(self) -> OutputSink: ...

    def on_upstream_head(
        self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]], keep_alive: bool, chunked: bool
    ) -> None: ...

    def on_upstream_body(self, data: bytes) -> None: ...

    def on_upstream_complete(self, keep_alive: bool) -> None: ...

    def on_upstream_trailing(self, text: str) -> None: ...

    def on_upstream_error(self, failure: UpstreamFailure) -> None: ...

    def on_upstream_pause_writing(self) -> None: ...

    def on_upstream_resume_writing(self) -> None: ...


class UpstreamConnection(asyncio.Protocol):
    """One connection to an upstream peer, reused through the pool."""

    __slots__ = (
        "_chunked",
        "_close_delimited",
        "_completed",
        "_completed_keep",
        "_headers",
        "_read_deadline",
        "_read_handle",
        "_reason",
        "_skip_body",
        "_trailing",
        "_write_handle",
        "closed",
        "ended",
        "exchange",
        "got_bytes",
        "idle_deadline",
        "idle_handle",
        "key",
        "loop",
        "parser",
        "pool",
        "read_timeout",
        "release_hook",
        "requests",
        "response_started",
        "reused",
        "transport",
        "write_timeout",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, pool: UpstreamPool | None, key: Any) -> None:
        self.loop = loop
        self.pool = pool
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.exchange: UpstreamEvents | None = None
        self.closed = False
        self.requests = 0
        self.reused = False
        self.got_bytes = False
        self.response_started = False
        self.idle_handle: asyncio.TimerHandle | None = None
        #: when the pool may close this idle connection (0 while it is in use); see ``UpstreamPool.release``
        self.idle_deadline = 0.0
        #: called once by the pool at the first release after a complete response (TLS: store the session)
        self.release_hook: Callable[[UpstreamConnection], None] | None = None
        self.read_timeout = 60.0
        self.write_timeout = 60.0
        self._read_deadline = 0.0
        self._read_handle: asyncio.TimerHandle | None = None
        self._write_handle: asyncio.TimerHandle | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._reason = b""
        self._skip_body = False
        self._close_delimited = False
        self._chunked = False
        #: the exchange whose response ended in the read being parsed; completed once the read is parsed (rule 5)
        self._completed: UpstreamEvents | None = None
        self._completed_keep = False
        self._trailing = False
        #: how the connection ended while no exchange was bound to it (None while open)
        self.ended: UpstreamFailure | None = None

    # ------------------------------------------------------------------ asyncio protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._cancel_timers()
        exchange = self.exchange
        if exchange is None:
            self.ended = from_exception(exc, Phase.READING_HEADER)
            if self.pool is not None:
                self.pool.discard(self)
            return
        self.exchange = None
        if self.response_started and self._close_delimited:
            exchange.on_upstream_complete(False)  # EOF ends a body without length or chunking
        else:
            exchange.on_upstream_error(from_exception(exc, Phase.READING_HEADER))

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost reports

    def data_received(self, data: bytes) -> None:
        if self.exchange is None:
            # idle connection: the peer closed or sent garbage; it must never be handed out
            self.close()
            return
        self.got_bytes = True
        if self._read_deadline:
            self._read_deadline = self.loop.time() + self.read_timeout
        # what this read produces downstream (head, body, chunk framing) leaves in one write: see HttpConnection.cork
        sink = self.exchange.conn
        corked = sink.cork()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass  # a 101 was refused in on_headers_complete
        except httptools.HttpParserError:
            exchange = self.exchange
            if exchange is not None:
                self.exchange = None
                self.abort()
                text = "upstream sent invalid chunked response" if self.response_started and self._chunked else ""
                exchange.on_upstream_error(UpstreamFailure(Kind.INVALID, Phase.READING_HEADER, 0, text))
            elif self._completed is not None:
                self._trailing = True  # garbage after a complete response
        finally:
            completed = self._completed
            if completed is not None:
                self._complete(completed)
            if corked:
                sink.uncork()

    def _complete(self, exchange: UpstreamEvents) -> None:
        """The response ended in the read just parsed: reusable only if nothing followed it (rule 5)."""
        self._completed = None
        if self._trailing:
            self._trailing = False
            exchange.on_upstream_trailing(
                "upstream sent data after final chunk"
                if self._chunked
                else 'upstream sent more data than specified in "Content-Length" header'
            )
            exchange.on_upstream_complete(False)
            return
        exchange.on_upstream_complete(self._completed_keep)

    def pause_writing(self) -> None:
        if self.exchange is not None:
            self._write_handle = self.loop.call_later(self.write_timeout, self._write_timed_out)
            self.exchange.on_upstream_pause_writing()

    def resume_writing(self) -> None:
        if self._write_handle is not None:
            self._write_handle.cancel()
            self._write_handle = None
        if self.exchange is not None:
            self.exchange.on_upstream_resume_writing()

    # ------------------------------------------------------------------ use by an exchange
    def bind(self, exchange: UpstreamEvents, read_timeout: float, write_timeout: float, skip_body: bool) -> None:
        """Attach to an exchange for one request/response (a pending idle timer just finds it busy)."""
        self.idle_deadline = 0.0
        self._read_deadline = 0.0
        self.exchange = exchange
        self.read_timeout = read_timeout
        self.write_timeout = write_timeout
        self.requests += 1
        self.got_bytes = False
        self.response_started = False
        self._skip_body = skip_body
        self._close_delimited = False
        self._chunked = False
        self._headers = []
        self._reason = b""

    def send(self, data: bytes) -> None:
        """Write request body bytes; dropped once the transport is closing (its ``connection_lost`` reports why).

        Between the transport closing (the peer's EOF, a reset) and ``connection_lost`` reaching the exchange, the
        client may still deliver body bytes: uvloop raises on a write to a closed handle, so they are dropped here.
        """
        transport = self.transport
        if transport is not None and not self.closed and not transport.is_closing():
            transport.write(data)

    def arm_read_timer(self) -> None:
        """Start (or keep) the read timeout: called once the request has been fully written."""
        deadline = self._read_deadline = self.loop.time() + self.read_timeout
        handle = self._read_handle
        if handle is None:
            self._read_handle = self.loop.call_at(deadline, self._read_timer_fired)
        elif handle.when() > deadline:  # left by a request with a longer read_timeout on this connection
            handle.cancel()
            self._read_handle = self.loop.call_at(deadline, self._read_timer_fired)

    def _read_timer_fired(self) -> None:
        self._read_handle = None
        if self.exchange is None or self.closed or not self._read_deadline:
            return  # idle, or the current request is not fully written yet: the next arm creates a handle
        now = self.loop.time()
        if now < self._read_deadline:
            self._read_handle = self.loop.call_at(self._read_deadline, self._read_timer_fired)
            return
        exchange = self.exchange
        self.exchange = None
        self.abort()
        exchange.on_upstream_error(UpstreamFailure(Kind.TIMEOUT, Phase.READING_HEADER))

    def _write_timed_out(self) -> None:
        self._write_handle = None
        exchange = self.exchange
        if exchange is None:
            return
        self.exchange = None
        self.abort()
        exchange.on_upstream_error(UpstreamFailure(Kind.TIMEOUT, Phase.SENDING))

    def _cancel_timers(self) -> None:
        if self._read_handle is not None:
            self._read_handle.cancel()
            self._read_handle = None
        if self._write_handle is not None:
            self._write_handle.cancel()
            self._write_handle = None
        if self.idle_handle is not None:
            self.idle_handle.cancel()
            self.idle_handle = None

    def detach(self) -> None:
        """The exchange is done with this connection (it goes back to the pool or is closed).

        The read timer stays (disarmed): cancelling and re-creating it per request costs more than letting a
        stale handle fire once and find nothing to do.
        """
        self.exchange = None
        self._read_deadline = 0.0
        if self._write_handle is not None:
            self._write_handle.cancel()
            self._write_handle = None
        if self._skip_body:
            # a HEAD response left the parser expecting a body that never comes: start afresh
            self.parser = httptools.HttpResponseParser(self)
            self._skip_body = False

    def pause_reading(self) -> None:
        if self.transport is not None and not self.closed:
            try:
                self.transport.pause_reading()
            except RuntimeError:
                pass

    def resume_reading(self) -> None:
        if self.transport is not None and not self.closed:
            try:
                self.transport.resume_reading()
            except RuntimeError:
                pass

    def close(self) -> None:
        self.closed = True
        self._cancel_timers()
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.closed = True
        self._cancel_timers()
        if self.transport is not None:
            self.transport.abort()

    # ------------------------------------------------------------------ httptools callbacks
    def on_message_begin(self) -> None:
        if self._completed is not None:
            self._trailing = True  # another message after the complete one, in the same read

    def on_status(self, reason: bytes) -> None:
        self._reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        parser = self.parser
        status = parser.get_status_code()
        exchange = self.exchange
        if exchange is None:
            return
        if 100 <= status < 200:
            self._headers = []
            self._reason = b""
            if status == 101:  # no request asks to upgrade (WebSockets are not proxied yet): nginx refuses it
                self.exchange = None
                self.abort()
                text = 'upstream sent "101 Switching Protocols" response to a non-upgrade request'
                exchange.on_upstream_error(UpstreamFailure(Kind.INVALID, Phase.READING_HEADER, 0, text))
            return  # interim responses are not forwarded
        self.response_started = True
        chunked = False
        has_length = False
        for name, value in self._headers:
            if len(name) == 17 and name.lower() == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif len(name) == 14 and name.lower() == b"content-length":
                has_length = True
        self._close_delimited = not (chunked or has_length or self._skip_body or status in (204, 304))
        self._chunked = chunked
        headers = self._headers
        self._headers = []
        exchange.on_upstream_head(status, self._reason, headers, parser.should_keep_alive(), chunked)
        if self._skip_body and self.exchange is not None:
            # HEAD: no body follows whatever the headers say; the response ends here (rule 5)
            self._completed = self.exchange
            self._completed_keep = parser.should_keep_alive()
            self.exchange = None

    def on_body(self, body: bytes) -> None:
        exchange = self.exchange
        if exchange is not None and self.response_started:
            exchange.on_upstream_body(body)
        elif self._completed is not None:
            self._trailing = True  # a body after a HEAD response's head

    def on_message_complete(self) -> None:
        exchange = self.exchange
        if exchange is None or not self.response_started:
            return
        self.exchange = None
        self._completed = exchange
        self._completed_keep = self.parser.should_keep_alive()
