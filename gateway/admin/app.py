"""``AdminApp``: the Admin API as a function from a request to a response, without sockets.

Request processing, in Kong's order (``kong/api/init.lua`` with lapis):

1. Route the path (a trailing slash is ignored); unknown -> 404 ``{"message":"Not found"}``; a disabled
   path (``/targets``, ``/snis/{s}/certificate``) -> the same 404.
2. ``before_filter``: Content-Type checks for bodies (400 / 415, see ``bodies.py``).
3. Method: ``OPTIONS`` -> 204 with ``Allow``; ``HEAD`` runs ``GET``; anything else unknown -> 405.
4. Arguments: query and body, a bad JSON body -> 400 ``Cannot parse JSON body`` (see ``bodies.py``).
5. The handler; an uncaught exception is logged at ``error`` and answered 500 ``An unexpected error occurred``.
   A write the store refuses because it could not survive a restart (``StoreUnavailable``: the SQLite file was
   removed or replaced under the process) gets the same 500, and its reason is logged at ``crit``.

Error-log lines about a request carry nginx's context (``*<conn> ..., client: ..., server: kong_admin, request:
"...", host: "..."``). Responses nginx generates itself (413, 400 for bad framing) are ``nginx_page``: nginx's
HTML page with the headers Kong's ``admin_header_filter`` adds, and no CORS headers.

Every response carries Kong's CORS headers; every request gets one line in the admin access log. ``Server`` and
``X-Kong-Admin-Latency`` follow the ``headers`` setting as in Kong's ``admin_header_filter``: ``server_tokens`` (or
``Server``) and ``latency_tokens`` (or ``X-Kong-Admin-Latency``) enable them, ``headers = off`` removes both.

Read-your-writes: when a request changed the store (its version moved) and ``settle`` is given, the answer waits
for ``settle(version)``: the runtime returns once the new configuration is live in every proxy process (bounded).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from gateway.admin import acls, certificates, config, consumers, health, info, plugins, tls, upstreams
from gateway.admin.bodies import BodyError, check_body_headers, load_args
from gateway.admin.catalog import CATALOG, by_name
from gateway.admin.context import Context, FormCoercer
from gateway.admin.endpoints import (
    Handler,
    collection_get,
    collection_post,
    entity_delete,
    entity_get,
    entity_patch,
    entity_put,
    error_response,
    foreign_entity_handlers,
    nested_collection_get,
    nested_collection_post,
    nested_entity_handlers,
)
from gateway.admin.http import Request, Response, message, nginx_error_page
from gateway.admin.router import Router
from gateway.entities.errors import EntityError
from gateway.entities.forms import coerce_form
from gateway.observability.accesslog import AccessLog
from gateway.observability.errorlog import ErrorLog, request_context
from gateway.settings import Settings
from gateway.store.backend import StoreUnavailable
from gateway.store.interface import Store
from gateway.version import SERVER_TOKEN

__all__ = ["SERVER_NAME", "AdminApp", "build_router"]

SERVER_NAME = "kong_admin"
"""The admin block's ``server_name``, which nginx writes in the context of its error lines."""

_DISABLED = ("/targets", "/targets/:targets", "/targets/:targets/upstream", "/snis/:snis/certificate")


def _add_all(router: Router, routes: dict[str, dict[str, Handler]], accepts_yaml: bool = False) -> None:
    for pattern, methods in routes.items():
        for method, handler in methods.items():
            router.add(pattern, method, handler, accepts_yaml)


def build_router(
    node: info.NodeInfo,
    config_state: config.ConfigState,
    health_view: health.HealthView | None = None,
    tls_snapshot: tls.SnapshotSource | None = None,
) -> Router:
    """Kong's generated endpoints, then its customisations, in the same override order (``health_view`` is the
    proxy's health registry, which the upstream health endpoints read; None in an Admin API without a proxy), then
    ours: the ``/tls`` endpoints over ``tls_snapshot`` (absent without one)."""
    router = Router()
    for spec in CATALOG:
        collection, item = f"/{spec.path}", f"/{spec.path}/:{spec.name}"
        _add_all(router, {collection: {"GET": collection_get(spec), "POST": collection_post(spec)}})
        _add_all(
            router,
            {
                item: {
                    "GET": entity_get(spec),
                    "PUT": entity_put(spec),
                    "PATCH": entity_patch(spec),
                    "DELETE": entity_delete(spec),
                }
            },
        )
        for fk, target_name in spec.foreign.items():
            parent = by_name(target_name)
            _add_all(router, {f"{item}/{fk}": foreign_entity_handlers(spec, fk)})
            nested = f"/{parent.path}/:{parent.name}/{spec.nested_path}"
            _add_all(
                router,
                {
                    nested: {
                        "GET": nested_collection_get(spec, parent, fk),
                        "POST": nested_collection_post(spec, parent, fk),
                    },
                    f"{nested}/:{spec.name}": nested_entity_handlers(parent, spec, fk),
                },
            )
    _add_all(router, certificates.certificate_routes())
    _add_all(router, upstreams.target_routes())
    _add_all(router, health.health_routes(node.node_id, health_view))
    _add_all(router, {"/consumers": {"GET": consumers.consumers_get()}})
    _add_all(router, acls.acl_routes())
    for pattern in (
        "/plugins/:plugins",
        "/services/:services/plugins/:plugins",
        "/routes/:routes/plugins/:plugins",
        "/consumers/:consumers/plugins/:plugins",
    ):
        patch = router.methods(pattern).get("PATCH")
        if patch is not None:
            router.add(pattern, "PATCH", plugins.with_plugin_name(patch))
    _add_all(router, info.info_routes(node, router.patterns))
    _add_all(router, config.config_routes(config_state), accepts_yaml=True)
    if tls_snapshot is not None:
        _add_all(router, tls.tls_routes(tls_snapshot))
    for pattern in _DISABLED:
        router.disable(pattern)
    return router


def _admin_headers(headers: tuple[str, ...]) -> tuple[bool, bool]:
    """Whether ``Server`` and ``X-Kong-Admin-Latency`` are sent, from the ``headers`` setting (Kong's
    ``enabled_headers``: ``off`` first disables all, tokens are case-insensitive)."""
    tokens = {token.lower() for token in headers} if headers and headers[0].lower() != "off" else set()
    server = "server_tokens" in tokens or "server" in tokens
    latency = "latency_tokens" in tokens or "x-kong-admin-latency" in tokens
    return server, latency


class AdminApp:
    """The Admin API. ``handle`` is the whole request cycle; ``start_admin_server`` puts it on a socket."""

    def __init__(
        self,
        db: Store,
        settings: Settings,
        error_log: ErrorLog,
        access_log: AccessLog,
        status: Callable[[], dict[str, Any] | Awaitable[dict[str, Any]]],
        coerce: FormCoercer | None = None,
        health_view: health.HealthView | None = None,
        settle: Callable[[int], Awaitable[None]] | None = None,
        pids: Callable[[], list[int]] | None = None,
        metrics: Callable[[], Awaitable[bytes]] | None = None,
        tls_snapshot: tls.SnapshotSource | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.error_log = error_log
        self.access_log = access_log
        self.config_state = config.ConfigState()
        self.settle = settle
        self.node = info.NodeInfo(status=status, config_hash=lambda: self.config_state.current(db.export))
        if pids is not None:
            self.node.pids = pids
        self.coerce = coerce or coerce_form
        self.server_header, self.latency_header = _admin_headers(settings.headers)
        #: the ``/metrics`` scrape (``GET /metrics`` exists when the prometheus plugin is enabled), or None
        self.metrics = metrics
        self.router = build_router(self.node, self.config_state, health_view, tls_snapshot)
        if metrics is not None:
            from gateway.admin.metrics import metrics_routes

            _add_all(self.router, metrics_routes(metrics))
        self._connections = itertools.count(1)

    def next_connection(self) -> int:
        """The number of a new Admin connection (nginx's ``*N`` in error lines)."""
        return next(self._connections)

    async def handle(
        self,
        method: str,
        target: str,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        remote_addr: str = "127.0.0.1",
        http_version: str = "1.1",
        conn: int | None = None,
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """One request by value: ``target`` is the request target (path and optional query), ``conn`` the
        connection's number for error lines.

        Logs the request in the admin access log; the socket server calls this too.
        """
        path, _, query = target.partition("?")
        line = f"{method} {target} HTTP/{http_version}"
        request = Request(method.upper(), path, query, list(headers), body, remote_addr, line, conn)
        response = await self.dispatch(request)
        sent = 0 if request.method == "HEAD" else len(response.body)
        self.log_access(request, response.status, sent, line)
        return response.status, self.response_headers(request, response), response.body

    async def dispatch(self, request: Request) -> Response:
        """Route, check, parse and run; never raises."""
        started = time.monotonic()
        before = self.db.version
        response = await self._dispatch(request)
        if self.settle is not None and self.db.version != before:
            await self.settle(self.db.version)
        if request.method == "HEAD":
            response = Response(response.status, b"", [*response.headers, ("Content-Length", str(len(response.body)))])
        if self.latency_header:
            latency = int((time.monotonic() - started) * 1000)
            response.headers.append(("X-Kong-Admin-Latency", str(latency)))
        return response

    async def _dispatch(self, request: Request) -> Response:
        matched = self.router.match(request.path)
        if matched is None or matched[0].disabled:
            return message(404, "Not found")
        route, params = matched
        refused = check_body_headers(request, route.accepts_yaml)
        if refused is not None:
            return refused
        method = "GET" if request.method == "HEAD" else request.method
        if method == "OPTIONS":
            allowed = ", ".join(route.allowed())
            asked = request.header("access-control-request-headers")
            return Response(
                204,
                b"",
                [
                    ("Allow", allowed),
                    ("Access-Control-Allow-Methods", allowed),
                    (
                        "Access-Control-Allow-Headers",
                        asked or "Content-Type",
                    ),
                ],
            )
        handler = route.methods.get(method)
        if handler is None:
            return message(405, "Method not allowed")
        try:
            args = load_args(request)
        except BodyError as err:
            return err.response
        except Exception as exc:  # a parser bug must not take the connection down
            return self._failed(request, exc)
        ctx = Context(request, dict(params), args, self.db, self.settings, self.coerce)
        try:
            return await handler(ctx)
        except EntityError as err:
            return error_response(err)
        except StoreUnavailable as exc:
            self.error_log.crit(f"[store] {exc}", request.conn, self.log_context(request))
            return message(500, "An unexpected error occurred")
        except Exception as exc:
            return self._failed(request, exc)

    def _failed(self, request: Request, exc: Exception) -> Response:
        """The last line of defence: log it, answer like Kong's ``handle_error``."""
        self.error_log.error(
            f"[admin] {request.method} {request.path}: {exc!r}", request.conn, self.log_context(request)
        )
        return message(500, "An unexpected error occurred")

    @staticmethod
    def log_context(request: Request) -> str:
        """nginx's ``, client: ..., server: kong_admin, request: "...", host: "..."`` for a line about ``request``."""
        return request_context(
            request.remote_addr, request.line or None, host=request.header("host"), server=SERVER_NAME
        )

    def nginx_page(self, status: int) -> tuple[list[tuple[str, str]], bytes]:
        """A response nginx makes itself (413, 400 ...): its HTML page, ``Connection: close``, and what Kong's
        ``admin_header_filter`` adds (``Server``, ``X-Kong-Admin-Latency``); the socket server adds ``Date``."""
        page = nginx_error_page(status)
        headers = [("Server", SERVER_TOKEN)] if self.server_header else []
        headers += [*page.headers, ("Content-Length", str(len(page.body))), ("Connection", "close")]
        if self.latency_header:
            headers.append(("X-Kong-Admin-Latency", "0"))
        return headers, page.body

    def response_headers(self, request: Request, response: Response) -> list[tuple[str, str]]:
        """Kong's admin headers around the handler's own: Server, CORS, length."""
        headers = [("Server", SERVER_TOKEN)] if self.server_header else []
        headers.extend(response.headers)
        names = {name.lower() for name, _ in headers}
        if "content-length" not in names:
            headers.append(("Content-Length", str(len(response.body))))
        headers.append(("Access-Control-Allow-Origin", request.header("origin") or "*"))
        headers.append(("Access-Control-Allow-Credentials", "true"))
        return headers

    def log_access(self, request: Request, status: int, body_bytes: int, request_line: str) -> None:
        """One nginx ``combined`` line in the admin access log."""
        self.access_log.write(
            request.remote_addr,
            request_line,
            status,
            body_bytes,
            request.header("referer"),
            request.header("user-agent"),
        )
