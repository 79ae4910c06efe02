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

import operator
import time
from collections.abc import Callable, Iterable
from email.utils import formatdate
from typing import Any, Final

from gateway.version import SERVER_TOKEN


def first_value(headers: Iterable[tuple[str, str]], name: str) -> str | None:
    """The first value of header ``name`` (case-insensitive) among (name, value) pairs, or None.

    For the small header lists outside the proxy path (Admin API requests and responses, the OCSP/CRL client).
    """
    lname = name.lower()
    for key, value in headers:
        if key.lower() == lname:
            return value
    return None


__all__ = [
    "REQUEST_HOP_BY_HOP",
    "RESPONSE_HOP_BY_HOP",
    "SERVER_HEADER",
    "VIA_VALUE",
    "DateCache",
    "HeaderPolicy",
    "connection_tokens",
    "decimal",
]

SERVER_HEADER = b"Server: " + SERVER_TOKEN.encode() + b"\r\n"
VIA_VALUE = "1.1 " + SERVER_TOKEN
_VIA_LINE: Final = b"Via: " + VIA_VALUE.encode() + b"\r\n"

#: ``b"0"`` .. ``b"999"``: a status or a latency in ms is almost always one of them
_DECIMALS: Final = tuple(b"%d" % number for number in range(1000))


def decimal(number: int) -> bytes:
    """``number`` in decimal ASCII, from a table below 1000: ``%d`` builds a scratch integer to convert each one,
    two objects made and freed per value of the response tail (``HeaderPolicy.response_tails``)."""
    return _DECIMALS[number] if 0 <= number < 1000 else b"%d" % number


# lowercase names dropped from the client's headers before they are appended to ours
REQUEST_HOP_BY_HOP: Final = frozenset(
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

RESPONSE_HOP_BY_HOP: Final = frozenset(("connection", "keep-alive", "transfer-encoding", "content-length", "upgrade"))


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
    """The ``headers`` / ``headers_upstream`` settings as booleans, computed once, and the proxied response's tail.

    The tail is what Kong appends to every proxied response head after the upstream's own headers:
    ``X-Kong-Upstream-Status``, ``X-Kong-Upstream-Latency``, ``X-Kong-Proxy-Latency``, ``Via`` (when the upstream
    sent none), ``Server`` (when the upstream sent none) and ``X-Kong-Request-Id``, each as the policy allows, then
    the blank line. Its text is fixed by the policy except for two facts of the response (did the upstream send
    ``Via``, ``Server``), so the four variants are compiled here as ``%`` templates (``response_tails``, indexed
    by ``2 * via_sent + server_sent``) and a request only fills in the values: ``tail_values`` picks them, in
    template order, from ``(status, upstream latency ms, proxy latency ms, request id)``, each as bytes (the numbers
    through ``decimal``; None when the template has none).
    """

    __slots__ = (
        "proxy_latency",
        "request_drop",
        "request_id",
        "request_id_upstream",
        "response_latency",
        "response_tails",
        "server",
        "tail_values",
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
        #: the client's request headers never sent upstream: the hop-by-hop ones, and ``X-Kong-Request-Id`` when Kong
        #: sets its own (built once: the request path adds only what a client's ``Connection`` header names)
        self.request_drop: frozenset[str] = (
            REQUEST_HOP_BY_HOP | {"x-kong-request-id"} if self.request_id_upstream else REQUEST_HOP_BY_HOP
        )
        lead = b""
        picked: list[int] = []
        if self.upstream_status:
            lead += b"X-Kong-Upstream-Status: %b\r\n"
            picked.append(0)
        if self.upstream_latency:
            lead += b"X-Kong-Upstream-Latency: %b\r\n"
            picked.append(1)
        if self.proxy_latency:
            lead += b"X-Kong-Proxy-Latency: %b\r\n"
            picked.append(2)
        end = b"\r\n"
        if self.request_id:
            end = b"X-Kong-Request-Id: %b\r\n\r\n"
            picked.append(3)
        # fixed text in a template that is %-formatted
        via = _VIA_LINE.replace(b"%", b"%%") if picked else _VIA_LINE
        server = SERVER_HEADER.replace(b"%", b"%%") if picked else SERVER_HEADER
        #: index ``2 * via_sent + server_sent``: did the upstream's head carry ``Via`` / ``Server``
        self.response_tails: tuple[bytes, ...] = tuple(
            lead
            + (b"" if via_sent or not self.via else via)
            + (b"" if server_sent or not self.server else server)
            + end
            for via_sent in (False, True)
            for server_sent in (False, True)
        )
        self.tail_values: Callable[[tuple[Any, ...]], Any] | None = operator.itemgetter(*picked) if picked else None
