"""The plugin contract: handler classes, their phases and priority, and what a phase may read and change.

Theory of operation
-------------------
A *handler class* (``Plugin`` subclass) is registered once per plugin name with its ``PRIORITY`` (Kong's
``handler.PRIORITY``: higher runs first) and the phases it implements. A *plugin instance* is one enabled
``plugins`` row compiled by ``handler_class.compile(row, config_ctx)`` when the snapshot is built: everything
expensive (trust stores, consumer maps, parsed PEM) happens there, so a phase method only reads attributes.

Phases, as Kong runs them (``kong/init.lua``):

- ``certificate``: during the TLS handshake, *global* plugins only (Kong runs the global iterator there). It is a
  class-level hook here (``Plugin.handshake_policy``), because what it needs is a view over *all* instances of
  the plugin (mtls-auth's SNI map), not one instance's config.
- ``access``: the collecting phase. Plugins run in priority order; each one's instance is chosen for the
  request's route, service and *the consumer known at that moment* (``chains.PluginIndex``). A handler returns
  None to continue, an ``Exit`` to answer the request itself (``kong.response.exit``: later access handlers are
  skipped), or an awaitable of either when it must wait (an OCSP/CRL fetch); the chain resumes when it is done.
- ``header_filter`` and ``log``: the instances collected during ``access`` run again, in the same order.

A ``PluginContext`` is allocated only for requests whose route has a chain, so routes without plugins pay one
dict lookup.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from gateway.entities.index import index_of

if TYPE_CHECKING:
    from gateway.observability.errorlog import ErrorLog

__all__ = [
    "PHASES",
    "BuildContext",
    "Exit",
    "LogFacts",
    "Plugin",
    "PluginContext",
    "handler_class",
    "register_handler",
    "registered_handlers",
]

PHASES = ("certificate", "access", "header_filter", "log")

JSON_UTF8 = "application/json; charset=utf-8"


class Exit:
    """A response produced by a plugin: ``kong.response.exit`` (the exact ``body``, no ``request_id``), or
    ``kong.response.error`` (``error`` set: the proxy renders Kong's error template, chosen by the request's
    ``Accept``, with the request id).

    Attributes:
        status: the HTTP status.
        body: the exact body bytes (unused for an error).
        content_type: the Content-Type value, or None for no body type.
        headers: extra response headers, in order.
        error: the message of a ``kong.response.error``, or None.
        text: the ``message`` of a ``{message = ...}`` body: Kong sends it as ``grpc-message`` on a gRPC request.
    """

    __slots__ = ("body", "content_type", "error", "headers", "status", "text")

    def __init__(
        self,
        status: int,
        body: bytes,
        content_type: str | None = JSON_UTF8,
        headers: tuple[tuple[str, str], ...] = (),
        error: str | None = None,
        text: str | None = None,
    ) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers
        self.error = error
        self.text = text

    @classmethod
    def kong_error(cls, status: int, message: str) -> Exit:
        """``kong.response.error(status, message)``: Kong's error template, rendered per request by the proxy."""
        return cls(status, b"", error=message)

    @classmethod
    def message(cls, status: int, message: str) -> Exit:
        """``kong.response.exit(status, {message = message})``: compact JSON, as Kong's cjson encodes it."""
        escaped = message.replace("\\", "\\\\").replace('"', '\\"')
        return cls(status, ('{"message":"' + escaped + '"}').encode(), text=message)

    def __repr__(self) -> str:
        return f"Exit({self.status}, {self.body!r})"


AccessResult = Exit | None | Awaitable[Exit | None]


def _ms(seconds: float) -> int:
    return int(seconds * 1000) if seconds > 0 else 0


class LogFacts:
    """What a ``log`` handler reads about the finished request: the parts of Kong's ``kong.log.serialize()`` the
    plugins here use, as plain numbers, set by the exchange only for requests whose chain has a ``log`` phase.

    Attributes:
        status: the status sent to the client.
        proxied: the response came from the upstream (Kong's ``kong.response.get_source() == "service"``); a
            response Kong generated (a plugin's exit, a 502 after the upstream failed) is not.
        start / sent_at / head_at / end: the loop's clock (seconds) when the request started, was sent upstream
            (0: never), the upstream's response head arrived (0: never), and the response ended.
        head: the request head (for the request size); body_bytes: request body bytes read.
        response_bytes: response head and body bytes written (chunk framing not counted).
    """

    __slots__ = ("body_bytes", "end", "head", "head_at", "proxied", "response_bytes", "sent_at", "start", "status")

    def __init__(
        self,
        status: int,
        proxied: bool,
        start: float,
        sent_at: float,
        head_at: float,
        end: float,
        head: Any,
        body_bytes: int,
        response_bytes: int,
    ) -> None:
        self.status = status
        self.proxied = proxied
        self.start = start
        self.sent_at = sent_at
        self.head_at = head_at
        self.end = end
        self.head = head
        self.body_bytes = body_bytes
        self.response_bytes = response_bytes

    @property
    def kong_ms(self) -> int:
        """``latencies.kong``: until the request went upstream (Kong's proxy latency), else until the response
        was produced (its response latency), as the ``X-Kong-*-Latency`` headers say."""
        return _ms((self.sent_at or self.end) - self.start)

    @property
    def upstream_ms(self) -> int | None:
        """``latencies.proxy``: from sending the request upstream to the response head (or to the end, when the
        upstream failed after the request was sent); None when nothing was sent upstream."""
        if not self.sent_at:
            return None
        return _ms((self.head_at or self.end) - self.sent_at)

    @property
    def request_ms(self) -> int:
        """``latencies.request``: the whole request, nginx's ``$request_time`` in milliseconds."""
        return _ms(self.end - self.start)

    @property
    def request_size(self) -> int:
        """nginx's ``$request_length``: request line, headers and body."""
        head = self.head
        size = len(head.request_line) + 4 + self.body_bytes
        for name, value in head.headers:
            size += len(name) + len(value) + 4
        return size


class PluginContext:
    """What one request's plugins share (Kong's ``ngx.ctx`` plus the PDK setters they use).

    Attributes:
        tls: the downstream ``TlsInfo`` (None over plain HTTP).
        conn_cache: a dict that lives as long as the client connection (per-connection verdicts), or None when
            the connection offers none.
        headers: the client's request headers as (name, value) pairs.
        route_id / service_id: the matched route and its service (None when absent).
        consumer: the authenticated consumer row (``kong.client.authenticate``), or None.
        credential: the credential row that authenticated it, or None.
        authenticated_groups: groups set by an auth plugin (read by ACL-like plugins).
        upstream_headers: lowercase name -> (name, value or None): set (value) or clear (None) on the upstream
            request (``kong.service.request.set_header`` / ``clear_header``); client copies are dropped.
        response_headers: headers added to the downstream response by ``header_filter`` handlers.
        error_log / conn_id / log_context: where ``log`` writes (the context string is built only on use).
        data: free per-request storage keyed by plugin name.
        log_facts: the finished request's ``LogFacts``, set before the ``log`` phase.
    """

    __slots__ = (
        "_log_context",
        "_log_context_fn",
        "authenticated_groups",
        "conn_cache",
        "conn_id",
        "consumer",
        "credential",
        "data",
        "error_log",
        "headers",
        "log_facts",
        "response_headers",
        "route_id",
        "service_id",
        "tls",
        "upstream_headers",
    )

    def __init__(
        self,
        *,
        tls: Any,
        conn_cache: dict[Any, Any] | None,
        headers: list[tuple[str, str]],
        route_id: str | None,
        service_id: str | None,
        error_log: ErrorLog | None = None,
        conn_id: int | None = None,
        log_context: Any = None,
    ) -> None:
        self.tls = tls
        self.conn_cache = conn_cache
        self.headers = headers
        self.route_id = route_id
        self.service_id = service_id
        self.consumer: Mapping[str, Any] | None = None
        self.credential: Mapping[str, Any] | None = None
        self.authenticated_groups: tuple[str, ...] | None = None
        self.upstream_headers: dict[str, tuple[str, str | None]] = {}
        self.response_headers: list[tuple[str, str]] = []
        self.error_log = error_log
        self.conn_id = conn_id
        self._log_context_fn = log_context
        self._log_context: str | None = None
        self.data: dict[str, Any] = {}
        self.log_facts: LogFacts | None = None

    def log(self, level: str, plugin: str, message: str) -> None:
        """One error-log line ``[<plugin>] <message>`` with the request's context, when ``level`` is enabled."""
        log = self.error_log
        if log is None or not log.enabled(level):
            return
        if self._log_context is None:
            fn = self._log_context_fn
            self._log_context = fn() if callable(fn) else (fn or "")
        log.log(level, f"[{plugin}] {message}", self.conn_id, self._log_context)


class BuildContext:
    """What ``Plugin.compile`` may read: the configuration's rows, indexed once per snapshot build.

    Attributes:
        index: the build's ``ConfigIndex`` (rows by id, by name, by foreign key); ``config`` is the same object.
        ca_certificates: id -> ``ca_certificates`` row.
        consumers: id -> consumer row; ``consumers_by_username`` / ``consumers_by_custom_id`` likewise.
        log: the error log (build-time problems: an unknown CA id, an unparsable PEM).
        certificate_index: the snapshot's downstream ``CertificateIndex`` (None without an ``ssl`` listener): the
            certificate phase precompiles its contexts from it.
        previous: the ``PluginIndex`` being replaced, so expensive handshake objects can be reused.
    """

    def __init__(
        self, config: Mapping[str, Any], log: Any = None, *, certificate_index: Any = None, previous: Any = None
    ) -> None:
        #: the build's one index of the export (``ConfigIndex``); also readable as the plain mapping it wraps
        self.index = index_of(config)
        self.config: Mapping[str, Any] = self.index
        self.log = log
        self.certificate_index = certificate_index
        self.previous = previous
        self.ca_certificates: Mapping[str, Mapping[str, Any]] = self.index.by_id("ca_certificates")
        self.consumers: Mapping[str, Mapping[str, Any]] = self.index.by_id("consumers")
        self.consumers_by_username: Mapping[str, Mapping[str, Any]] = self.index.by_field("consumers", "username")
        self.consumers_by_custom_id: Mapping[str, Mapping[str, Any]] = self.index.by_field("consumers", "custom_id")
        self._memo: dict[Any, Any] = {}

    def memo(self, key: Any, factory: Any) -> Any:
        """Build something once per snapshot (shared by every instance that asks with the same key)."""
        try:
            return self._memo[key]
        except KeyError:
            value = self._memo[key] = factory()
            return value

    def error(self, message: str) -> None:
        if self.log is not None:
            self.log.error(message)

    def consumer(self, ref: str | None) -> Mapping[str, Any] | None:
        """A consumer by id or username (Kong's ``anonymous`` / ``default_consumer`` lookups)."""
        if not ref:
            return None
        return self.consumers.get(ref) or self.consumers_by_username.get(ref)


class Plugin:
    """Base of plugin handlers. Subclasses set ``NAME`` and ``PRIORITY`` and override the phases they use.

    ``NO_CONSUMER`` (Kong's ``consumer = typedefs.no_consumer``): the plugin cannot be scoped to a consumer, and the
    consumer is ignored when choosing its instance (auth plugins run before a consumer is known anyway).
    """

    NAME: ClassVar[str] = ""
    PRIORITY: ClassVar[int] = 0
    NO_CONSUMER: ClassVar[bool] = False

    __slots__ = ("id", "row")

    def __init__(self, row: Mapping[str, Any]) -> None:
        self.row = row
        self.id: str = str(row.get("id"))

    @classmethod
    def compile(cls, row: Mapping[str, Any], build: BuildContext) -> Plugin:
        """Turn an enabled plugin row into an instance (override to precompute from ``row["config"]``)."""
        return cls(row)

    @classmethod
    def handshake_policy(cls, instances: list[tuple[Plugin, Mapping[str, Any]]], build: BuildContext) -> Any:
        """The certificate-phase object for all instances of this plugin (see ``chains.PluginIndex``), or None.

        ``instances`` pairs each instance with its row's scope; the default has no certificate phase.
        """
        return None

    # phases; the chain only calls the ones a subclass overrides
    def access(self, ctx: PluginContext) -> AccessResult:
        return None

    def header_filter(self, ctx: PluginContext) -> None:
        return None

    def log(self, ctx: PluginContext) -> None:
        return None

    @classmethod
    def implements(cls, phase: str) -> bool:
        """Whether the subclass overrides ``phase`` (Kong: ``handler[phase] ~= nil``)."""
        method = getattr(cls, phase, None)
        return method is not None and method is not getattr(Plugin, phase, None)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id}>"


_HANDLERS: dict[str, type[Plugin]] = {}


def register_handler(cls: type[Plugin]) -> type[Plugin]:
    """Register a handler class under ``cls.NAME`` (usable as a class decorator)."""
    if not cls.NAME:
        raise ValueError("a plugin handler needs a NAME")
    _HANDLERS[cls.NAME] = cls
    return cls


def handler_class(name: str) -> type[Plugin] | None:
    return _HANDLERS.get(name)


def registered_handlers() -> dict[str, type[Plugin]]:
    return dict(_HANDLERS)
