"""The access stage of a request, as pure functions: where the path is, the ``X-Forwarded-*`` values Kong computes,
and whether the matched route refuses the request before any plugin or upstream is involved.

Kong's runloop (``kong/runloop/handler.lua``, access phase) in that order: the route is matched on the normalized
path; ``X-Forwarded-*`` are taken from the request only when the peer is in ``trusted_ips``; a route with only
``https`` protocols refuses plain HTTP (426, or the configured redirect); a gRPC route refuses a request without a
gRPC content type (415) and HTTP/1 (426), and a route with ``grpcs`` but not ``grpc`` answers a gRPC request that did
not come over TLS with 200 and ``grpc-status: 1``. Nothing here writes: the exchange answers what these return.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from gateway.proxy.matchers import Route

__all__ = ["Forwarded", "Refusal", "forwarded", "route_refusal", "split_target"]


#: the values Kong sends upstream as ``X-Forwarded-Proto/Host/Port/Path/Prefix``; a plain tuple, built per request,
#: where a NamedTuple costs ten times more
Forwarded = tuple[str, str, str, str, str | None]


class Refusal(NamedTuple):
    """A route's refusal: ``message`` None means an empty body (a redirect's ``Location``, or gRPC headers, in
    ``extra``, with ``content_type`` if any)."""

    status: int
    message: str | None
    extra: tuple[tuple[str, str], ...]
    content_type: str | None = None


_HTTPS_REQUIRED = Refusal(
    426, "Please use HTTPS protocol", (("Connection", "Upgrade"), ("Upgrade", "TLS/1.2, HTTP/1.1"))
)
_HTTP2_REQUIRED = Refusal(426, "Please use HTTP2 protocol", (("Connection", "Upgrade"), ("Upgrade", "HTTP/2")))
_NOT_GRPC = Refusal(415, "Non-gRPC request matched gRPC route", ())
#: kong.response.exit(200, nil, {content-type = application/grpc, grpc-status = 1, ...}) in Kong's runloop
_GRPCS_REQUIRED = Refusal(
    200, None, (("grpc-status", "1"), ("grpc-message", "gRPC request matched gRPCs route")), "application/grpc"
)


def split_target(target: str) -> tuple[str, int]:
    """``(raw path, index of "?" or -1)`` of a request target; absolute-form takes the path from the request line."""
    query_at = target.find("?")
    raw_path = target if query_at == -1 else target[:query_at]
    if raw_path.startswith(("http://", "https://")):
        rest = raw_path.split("://", 1)[1]
        slash = rest.find("/")
        raw_path = rest[slash:] if slash != -1 else "/"
    return raw_path, query_at


def forwarded(
    get: Callable[[str], str | None] | None,
    https: bool,
    local_port: int,
    host_name: str,
    raw_path: str,
    prefix: str | None,
) -> Forwarded:
    """Kong's ``X-Forwarded-*`` values; ``get`` reads the request's headers, None when the peer is not trusted."""
    proto = host = port = path = fprefix = None
    if get is not None:
        proto = get("x-forwarded-proto")
        host = get("x-forwarded-host")
        port = get("x-forwarded-port")
        path = get("x-forwarded-path")
        fprefix = get("x-forwarded-prefix")
    if fprefix is None and prefix is not None and prefix != "/":
        fprefix = prefix
    return (
        proto if proto is not None else ("https" if https else "http"),
        host if host is not None else host_name,
        port if port is not None else str(local_port),
        path if path is not None else raw_path,
        fprefix,
    )


def route_refusal(
    route: Route, values: Forwarded, target: str, content_type: str | None, http2: bool = False
) -> Refusal | None:
    """What the route answers instead of proxying (https-only over http, HTTP/1 on a gRPC route), or None."""
    if route.https_only and values[0] != "https":
        code = route.https_redirect_status_code
        if code in (301, 302, 307, 308):
            return Refusal(code, None, (("Location", f"https://{values[1]}{target}"),))
        return _HTTPS_REQUIRED
    if route.grpc:
        if not (content_type or "").startswith("application/grpc"):
            return _NOT_GRPC
        if not http2:
            return _HTTP2_REQUIRED
        if not route.plain_grpc and values[0] != "https":
            return _GRPCS_REQUIRED
    return None
