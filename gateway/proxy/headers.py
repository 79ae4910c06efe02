"""Header rules of the traffic flow: which headers Kong adds, removes or rewrites, in each direction.

Rules (``kong/runloop/handler.lua``, ``kong/templates/nginx_kong.lua``, ``kong/conf_loader``):

- ``headers`` (downstream) tokens: ``server_tokens`` = ``Server`` + ``Via``; ``latency_tokens`` =
  ``X-Kong-Proxy-Latency``, ``X-Kong-Response-Latency``, ``X-Kong-Upstream-Latency`` (and the admin
  one); individual header names; ``off`` disables all. ``X-Kong-Upstream-Status`` only when named.
- ``headers_upstream``: ``X-Kong-Request-Id`` sent upstream when listed.
- Hop-by-hop request headers never forwarded: ``Connection`` and every token it lists (except the
  keep-alive/close/upgrade values themselves), ``Keep-Alive``, ``Proxy-Connection``, ``Proxy``, ``TE``
  (re-added as ``TE: trailers`` when the client asked for trailers), ``Upgrade``, ``Expect`` (we answer
  100-continue ourselves), ``Transfer-Encoding``/``Content-Length`` (re-framed), plus every header Kong
  sets itself (``Host``, ``Via``, ``X-Forwarded-*``, ``X-Real-IP``, ``X-Kong-Request-Id``).
- Hop-by-hop response headers removed: ``Connection`` and its listed tokens, ``Keep-Alive``,
  ``Transfer-Encoding``, ``Content-Length`` (re-framed), ``Upgrade``, ``Trailer`` unless the client
  asked for trailers.

The ``Date`` header is formatted once per second (``DateCache``); header lists are assembled as
``bytes`` pieces and joined once.
"""

from __future__ import annotations

import time
from email.utils import formatdate

from gateway.version import SERVER_TOKEN

__all__ = [
    "REQUEST_HOP_BY_HOP",
    "RESPONSE_HOP_BY_HOP",
    "SERVER_HEADER",
    "VIA_VALUE",
    "DateCache",
    "HeaderPolicy",
    "connection_tokens",
]

SERVER_HEADER = b"Server: " + SERVER_TOKEN.encode() + b"\r\n"
VIA_VALUE = "1.1 " + SERVER_TOKEN

# lowercase names dropped from the client's headers before they are appended to ours
REQUEST_HOP_BY_HOP = frozenset(
    (
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy",
        "te",
        "upgrade",
        "expect",
        "transfer-encoding",
        "content-length",
        "host",
        "via",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-forwarded-port",
        "x-forwarded-path",
        "x-forwarded-prefix",
        "x-real-ip",
    )
)

RESPONSE_HOP_BY_HOP = frozenset(("connection", "keep-alive", "transfer-encoding", "content-length", "upgrade"))


def connection_tokens(value: str | None) -> list[str]:
    """Lowercase tokens of a ``Connection`` header that name other headers to drop (Kong's ``csv`` walk)."""
    if not value:
        return []
    lowered = value.lower()
    if lowered in ("keep-alive", "close", "upgrade"):
        return []
    return [t.strip() for t in lowered.split(",") if t.strip() and t.strip() not in ("close", "keep-alive")]


class DateCache:
    """``Date: ...\\r\\n`` bytes, rebuilt at most once a second."""

    __slots__ = ("_line", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._line = b""

    def line(self) -> bytes:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._line = b"Date: " + formatdate(second, usegmt=True).encode() + b"\r\n"
        return self._line


class HeaderPolicy:
    """The ``headers`` / ``headers_upstream`` settings as booleans, computed once."""

    __slots__ = (
        "proxy_latency",
        "request_id",
        "request_id_upstream",
        "response_latency",
        "server",
        "upstream_latency",
        "upstream_status",
        "via",
    )

    def __init__(self, headers: tuple[str, ...], headers_upstream: tuple[str, ...]) -> None:
        tokens = {t.lower() for t in headers} if headers and headers[0].lower() != "off" else set()
        tokens.discard("off")
        server_tokens = "server_tokens" in tokens
        latency_tokens = "latency_tokens" in tokens
        self.server = server_tokens or "server" in tokens
        self.via = server_tokens or "via" in tokens
        self.proxy_latency = latency_tokens or "x-kong-proxy-latency" in tokens
        self.response_latency = latency_tokens or "x-kong-response-latency" in tokens
        self.upstream_latency = latency_tokens or "x-kong-upstream-latency" in tokens
        self.upstream_status = "x-kong-upstream-status" in tokens
        self.request_id = "x-kong-request-id" in tokens
        up = (
            {t.lower() for t in headers_upstream}
            if headers_upstream and headers_upstream[0].lower() != "off"
            else set()
        )
        self.request_id_upstream = "x-kong-request-id" in up
