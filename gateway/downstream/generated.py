"""Response heads and bodies that the gateway writes itself (Kong-generated responses).

Header order follows what Kong/nginx emit for ``kong.response.exit``::

    HTTP/1.1 404 Not Found
    Date: ...
    Content-Type: application/json; charset=utf-8
    Connection: keep-alive
    Content-Length: 103
    <extra headers: Location, Upgrade ...>
    X-Kong-Response-Latency: 0          (or, after proxying: X-Kong-Upstream-Latency, X-Kong-Proxy-Latency, Via)
    Server: kong/3.9.1
    X-Kong-Request-Id: <32 hex>

Each optional header obeys ``HeaderPolicy``. ``proxied`` responses (a 502/504 produced after the
balancer ran) carry the proxy headers instead of ``X-Kong-Response-Latency``, as Kong's header filter
does when ``KONG_PROXIED`` is set.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.downstream.headers import SERVER_HEADER, VIA_VALUE, DateCache, HeaderPolicy
from gateway.downstream.responses import STATUS_LINES

__all__ = ["CONTINUE_100", "render_generated"]

CONTINUE_100 = b"HTTP/1.1 100 Continue\r\n\r\n"
_VIA_LINE = b"Via: " + VIA_VALUE.encode() + b"\r\n"


def render_generated(
    status: int,
    body: bytes,
    content_type: str | None,
    *,
    keep_alive: bool,
    policy: HeaderPolicy,
    date: DateCache,
    request_id: str,
    latency_ms: int,
    extra: Sequence[tuple[str, str]] = (),
    proxied: bool = False,
    upstream_latency_ms: int | None = None,
    head_only: bool = False,
) -> bytes:
    """The full response bytes (head and, unless ``head_only``, body)."""
    parts = [STATUS_LINES[status], date.line()]
    if content_type is not None:
        parts.append(b"Content-Type: " + content_type.encode() + b"\r\n")
    connection = None
    for name, value in extra:
        if name.lower() == "connection":
            connection = value
    if connection is not None:
        parts.append(b"Connection: " + connection.encode("latin-1") + b"\r\n")
    else:
        parts.append(b"Connection: keep-alive\r\n" if keep_alive else b"Connection: close\r\n")
    parts.append(b"Content-Length: %d\r\n" % len(body))
    for name, value in extra:
        if name.lower() != "connection":
            parts.append(name.encode("latin-1") + b": " + value.encode("latin-1") + b"\r\n")
    if proxied:
        if policy.upstream_latency and upstream_latency_ms is not None:
            parts.append(b"X-Kong-Upstream-Latency: %d\r\n" % upstream_latency_ms)
        if policy.proxy_latency:
            parts.append(b"X-Kong-Proxy-Latency: %d\r\n" % latency_ms)
        if policy.via:
            parts.append(_VIA_LINE)
    elif policy.response_latency:
        parts.append(b"X-Kong-Response-Latency: %d\r\n" % latency_ms)
    if policy.server:
        parts.append(SERVER_HEADER)
    if policy.request_id:
        parts.append(b"X-Kong-Request-Id: " + request_id.encode() + b"\r\n")
    parts.append(b"\r\n")
    if not head_only:
        parts.append(body)
    return b"".join(parts)
