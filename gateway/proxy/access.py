"""The access stage of a request, as pure functions: where the path is, the ``X-Forwarded-*`` values Kong computes,
and whether the matched route refuses the request before any plugin or upstream is involved.

Kong's runloop (``kong/runloop/handler.lua``, access phase) in that order: the route is matched on the normalized
path; ``X-Forwarded-*`` are taken from the request only when the peer is in ``trusted_ips``; a route with only
``https`` protocols refuses plain HTTP (426, or the configured redirect); a gRPC route refuses HTTP/1 (426 for a gRPC
content type, 415 otherwise). Nothing here writes: the exchange answers what these functions return.
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
    """A route's refusal: ``message`` None means a redirect with an empty body (``Location`` in ``extra``)."""

    status: int
    message: str | None
    extra: tuple[tuple[str, str], ...]


_HTTPS_REQUIRED = Refusal(
    426, "Please use HTTPS protocol", (("Connection", "Upgrade"), ("Upgrade", "TLS/1.2, HTTP/1.1"))
)
_HTTP2_REQUIRED = Refusal(426, "Please use HTTP2 protocol", (("Connection", "Upgrade"), ("Upgrade", "HTTP/2")))
_NOT_GRPC = Refusal(415, "Non-gRPC request matched gRPC route", ())


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


def route_refusal(route: Route, values: Forwarded, target: str, content_type: str | None) -> Refusal | None:
    """What the route answers instead of proxying (https-only over http, HTTP/1 on a gRPC route), or None."""
    if route.https_only and values[0] != "https":
        code = route.https_redirect_status_code
        if code in (301, 302, 307, 308):
            return Refusal(code, None, (("Location", f"https://{values[1]}{target}"),))
        return _HTTPS_REQUIRED
    if route.grpc:
        return _HTTP2_REQUIRED if (content_type or "").startswith("application/grpc") else _NOT_GRPC
    return None
