"""The state of one exchange and the ways it ends: a generated answer (Kong's errors, a plugin's exit, a route's
refusal), the log phase, and the error-log context.

``ExchangeBase`` holds every slot of an exchange (``__slots__`` in one place, so the façade ``proxy.exchange.Exchange``
and the classes between stay slot-only and cost no more per request than one class did); the upstream tries
(``proxy.upstream_tries``), the response relay (``proxy.relay``) and the request side (``proxy.exchange``) build on
it, each a subclass, so every call stays a plain method call. The rules are listed in ``proxy.exchange``.
"""

from __future__ import annotations

import asyncio
import enum
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, cast

from gateway.downstream.client import ClientSide
from gateway.downstream.generated import render_generated
from gateway.downstream.request import new_request_id
from gateway.downstream.responses import (
    ERROR_MESSAGES,
    MIME_JSON,
    error_body,
    error_page_mime,
    response_mime,
)
from gateway.observability.errorlog import request_context
from gateway.plugins import Exit, PluginContext, run_log
from gateway.plugins.base import LogFacts
from gateway.proxy.access import Refusal
from gateway.proxy.grpc_status import MIME_GRPC, error_page_grpc, grpc_headers, is_grpc_request, message_json
from gateway.proxy.trace import debug_headers
from gateway.tls.upstream.connect import HandshakeFailure
from gateway.upstream.balancer import Handle
from gateway.upstream.connection import UpstreamConnection
from gateway.upstream.events import UpstreamEvents
from gateway.upstream.target import ServiceTarget

if TYPE_CHECKING:
    from gateway.downstream.request import RequestHead
    from gateway.plugins.chains import Chain
    from gateway.proxy.context import ProxyContext
    from gateway.proxy.router import Match
    from gateway.runtime.snapshot import Snapshot

__all__ = [
    "DONE",
    "PROXYING",
    "RESPONDED",
    "RESPONDING",
    "ExchangeBase",
    "Stage",
    "guarded",
    "to_ms",
]


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


PROXYING: Final = Stage.PROXYING
RESPONDING: Final = Stage.RESPONDING
RESPONDED: Final = Stage.RESPONDED
DONE: Final = Stage.DONE


def guarded(callback: Callable[..., None]) -> Callable[..., None]:
    """For the exchange's loop callbacks (connect, DNS, plugin tasks done): an exception there is a bug of ours, and
    must still end the request (``ExchangeBase._crashed``), never leave it hanging with a traceback on stderr."""

    @functools.wraps(callback)
    def run(self: ExchangeBase, *args: Any) -> None:
        try:
            callback(self, *args)
        except Exception as exc:
            self._crashed(exc)

    return run


def to_ms(seconds: float) -> int:
    return int(seconds * 1000) if seconds > 0 else 0


class ExchangeBase(UpstreamEvents):
    """One request/response cycle's state, its generated answers and its log phase (and, as ``UpstreamEvents``,
    what its upstream connection reports to: ``proxy.relay`` defines the events)."""

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
        "_debug",
        "_discarding",
        "_fresh_only",
        "_handle",
        "_head_at",
        "_head_bytes",
        "_host_header",
        "_lead",
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
        "_tls_failure",
        "_tries_left",
        "_up",
        "_upstream_head",
        "_upstream_uri",
        "conn",
        "snapshot",
        "stage",
        "state",
    )

    @property
    def sink(self) -> ClientSide:
        """``UpstreamEvents.sink``: the client connection, corked while an upstream read is handed over."""
        return self.conn

    def __init__(self, conn: ClientSide, head: RequestHead) -> None:
        self.conn = conn
        #: the process's state, as its class (``conn.state`` is it, known to the connection as its downstream half):
        #: compiled, every read of it is a struct field, not a lookup by name
        self.state = cast("ProxyContext", conn.state)
        self.head = head
        self.snapshot: Snapshot | None = None
        self.request_id = new_request_id()
        self.start = 0.0
        self.finished_at = 0.0
        self.status = 0
        self.bytes_sent = 0
        self.keep_alive = head.keep_alive
        self.stage = PROXYING
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
        #: ``lead_headers`` of ``_upstream_uri`` and ``_host_header`` when a lane had them ready (``Lane.lead``); b"":
        #: made per try. Whatever sets those two otherwise clears it
        self._lead = b""
        self._peer: tuple[str, int] = ("", 0)
        self._tls_error: str | None = None
        self._tls_failure: HandshakeFailure | None = None  # the last try's failed handshake, for the trace
        self._debug = False  # allow_debug_header and a Kong-Debug request that matched a route (``proxy.trace``)
        self._plugins: PluginContext | None = None
        self._plugin_chain: Chain | None = None
        self._access_done = False

    # the request side (``DownstreamExchange``'s methods) is defined by the façade ``proxy.exchange.Exchange``
    @property
    def response_started(self) -> bool:
        """The response head is on its way to the client (the connection's timers and aborts ask)."""
        return self.stage >= RESPONDING

    def _crashed(self, exc: Exception) -> None:
        """A bug in a callback of this exchange: log it at ``alert`` and still answer (500, or close mid-response)."""
        conn = self.conn
        self.state.error_log.loop_exception(None, {"message": "request processing failed", "exception": exc})
        self._abort_upstream()
        if self.stage == DONE:
            return
        if self.stage < RESPONDING:
            self._close_after = True
            self._respond_error(500)
            return
        self.stage = DONE
        self.keep_alive = False
        conn.exchange_finished(self, abort=True)

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

    def _refuse(self, refusal: Refusal) -> None:
        """Answer a route's refusal (``access.route_refusal``): Kong's error, or a redirect with an empty body."""
        if refusal.message is None:
            self._respond_generated(refusal.status, b"", refusal.content_type, extra=refusal.extra)
        else:
            self._kong_error(refusal.status, refusal.message, extra=refusal.extra)

    def _plugin_exit(self, result: Exit) -> None:
        if result.error is not None:
            self._kong_error(result.status, result.error, extra=result.headers)
            return
        if is_grpc_request(self.head) and result.content_type != MIME_GRPC:
            # kong.response.exit on a gRPC request (grpc_status rule 2): the message as grpc-message, no body
            text = result.text if result.text is not None else result.body.decode() if result.body else None
            extra = (*result.headers, *grpc_headers(result.status, text))
            self._respond_generated(result.status, b"", MIME_GRPC, extra=extra)
            return
        self._respond_generated(result.status, result.body, result.content_type, extra=result.headers)

    # ================================================================== generated responses
    def _kong_error(self, status: int, message: str, extra: tuple[tuple[str, str], ...] = ()) -> None:
        """``kong.response.error``: template from Accept only (JSON by default); a gRPC request gets Kong's gRPC
        form (``grpc_status`` rule 2: HTTP status kept, no body, ``grpc-status``/``grpc-message`` headers)."""
        if is_grpc_request(self.head):
            self._respond_generated(status, b"", MIME_GRPC, extra=(*extra, *grpc_headers(status)))
            return
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
        default_type = self.state.settings.error_default_type
        sent_status = 400 if status == 494 else status
        if error_page_grpc(head.accept, head.content_type, default_type):  # grpc_status rule 4
            message = ERROR_MESSAGES[status]
            if is_grpc_request(head):
                extra = (*extra, *grpc_headers(sent_status, message))
                body, mime = b"", MIME_GRPC
            else:
                body, mime = message_json(message), MIME_JSON
            self._respond_generated(
                sent_status, body, mime, extra=extra, proxied=proxied, upstream_latency_ms=upstream_latency_ms
            )
            return
        mime = error_page_mime(head.accept, head.content_type, default_type)
        body = error_body(mime, ERROR_MESSAGES[status], self.request_id)
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
        if self._debug:
            extra = (*extra, *self._debug_headers())
        now = conn.loop.time()
        latency = to_ms((self._sent_at if proxied and self._sent_at else now) - self.start)
        data = render_generated(
            status,
            body,
            content_type,
            keep_alive=keep,
            policy=self.state.header_policy,
            date=self.state.date,
            request_id=self.request_id,
            latency_ms=latency,
            extra=extra,
            proxied=proxied,
            upstream_latency_ms=upstream_latency_ms,
            head_only=self.head.method == "HEAD",
        )
        self.status = status
        self.stage = RESPONDING
        self.bytes_sent = len(body)
        self._head_bytes = len(data)  # the whole generated response (the log phase adds no body to it)
        conn.write(data)
        self.stage = RESPONDED
        self._maybe_finish()

    def _debug_headers(self) -> list[tuple[str, str]]:
        """Kong's debug headers and the TLS decision records (``proxy.trace``), for a ``Kong-Debug`` request."""
        match = self._match
        if match is None:
            return []
        return debug_headers(match, self.conn, self.snapshot, self._up, self._tls_failure, self._host_header)

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

    def _maybe_finish(self, now: float = 0.0) -> None:
        """The exchange is done once responded and its request fully read; ``now``: the time of the read that got
        it there, when the caller has it (the connection arms its keepalive timer from it)."""
        if self.stage == RESPONDED and (self._body_done or self._close_after):
            self.stage = DONE
            self.finished_at = now
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
            self.finished_at or self.conn.loop.time(),
            self.head,
            self._body_bytes,
            self._head_bytes + (0 if self._head_at == 0.0 else self.bytes_sent),
        )

    def _upstream_label(self) -> str:
        """nginx's ``upstream:`` for error lines (the current try's peer), built only when a line is logged."""
        service = self._service
        if not self._attempts or service is None:
            return ""
        ip, port = self._peer
        host_literal = f"[{ip}]" if ":" in ip else ip
        # grpc_pass has no URI part, so nginx's line names the peer alone (proxy_pass carries $upstream_uri)
        uri = "" if service.multiplexed else self._upstream_uri
        return f"{service.protocol}://{host_literal}:{port}{uri}"

    def _context(self, upstream: str | None) -> str:
        head = self.head
        return request_context(
            self.conn.remote_addr,
            head.request_line,
            upstream,
            head.host,
            self.request_id,
        )
