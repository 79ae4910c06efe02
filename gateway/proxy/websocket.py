"""WebSocket upgrades through http/https routes, as Kong 3.x proxies them: the request's and the 101's heads.

Kong's rules (``kong/runloop/handler.lua`` access and header-filter phases, ``nginx_kong.lua``):

1. A request whose ``Upgrade`` header is ``websocket`` is sent upstream with ``Upgrade: websocket`` and
   ``Connection: keep-alive, Upgrade`` (``$upstream_upgrade`` / ``$upstream_connection``, set right after ``Host``);
   any other request with ``Upgrade: keep-alive`` only (the client's ``Upgrade`` never passes). We also ask for the
   client's ``Connection: upgrade`` (RFC 6455 makes clients send it; it is what tells the HTTP/1.1 parser that what
   follows the head is not HTTP).
2. The upstream's ``101 Switching Protocols`` is relayed with Kong's response headers (``Via``, the latencies, the
   request id, the plugins' header filter), nginx's ``Connection: upgrade``, and the upstream's ``Upgrade`` only when
   it is ``websocket`` (Kong removes one that differs). Then bytes flow both ways (``proxy.tunnel``) and the upstream
   connection never returns to the pool.
3. Any other answer to an upgrade request is relayed as a normal response; a 101 to a request that did not ask for
   an upgrade stays nginx's 502 (``upstream sent "101 Switching Protocols" response to a non-upgrade request``).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Final, cast

from gateway.downstream.headers import decimal
from gateway.plugins import run_header_filter
from gateway.proxy.response_head import scan_headers
from gateway.proxy.tunnel import Tunnel

if TYPE_CHECKING:
    from gateway.downstream.connection import HttpConnection
    from gateway.downstream.request import RequestHead
    from gateway.proxy.exchange_base import ExchangeBase

__all__ = ["UPGRADE_LINES", "asks_websocket", "start_tunnel", "switching_head", "upgrade_request"]

#: rule 1: what replaces ``Connection: keep-alive`` at the start of ``request_head.fixed_headers``
UPGRADE_LINES: Final = b"Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
_KEEP_ALIVE: Final = b"Connection: keep-alive\r\n"


def asks_websocket(head: RequestHead) -> bool:
    """Rule 1's condition; ``head.connection`` (recorded by ``check_head``) is tested first, so a request without
    ``Connection: upgrade`` costs one comparison."""
    connection = head.connection
    if connection is None or "upgrade" not in connection.lower():
        return False
    upgrade = head.get("upgrade")
    return upgrade is not None and upgrade.strip().lower() == "websocket"


def upgrade_request(fixed: bytes) -> bytes:
    """``fixed_headers``' bytes with Kong's upgrade lines in place of its ``Connection: keep-alive``."""
    if not fixed.startswith(_KEEP_ALIVE):  # the layout fixed_headers guarantees; refuse loudly if it ever changes
        raise ValueError("fixed_headers no longer starts with Connection: keep-alive")
    return UPGRADE_LINES + fixed[len(_KEEP_ALIVE) :]


def switching_head(ex: ExchangeBase, reason: bytes, headers: list[tuple[bytes, bytes]], now: float) -> bytes:
    """Rule 2: the 101 head the client gets."""
    state = ex.state
    policy = state.header_policy
    upgrade: bytes | None = None
    for name, value in headers:
        if name.lower() == b"upgrade":
            upgrade = value
            break
    rest, content_type, _length, has_via, has_server, has_date = scan_headers(headers, ex.head.te, policy.via)
    parts = [
        b"HTTP/1.1 101 " + (reason or b"Switching Protocols") + b"\r\n",
        b"" if has_date else state.date.line(),
        b"" if content_type is None else b"Content-Type: " + content_type + b"\r\n",
        b"Connection: upgrade\r\n",
        b"Upgrade: " + upgrade + b"\r\n" if upgrade is not None and upgrade.lower() == b"websocket" else b"",
        *rest,
    ]
    tail = policy.response_tails[has_via * 2 + has_server]
    pick = policy.tail_values
    if pick is not None:
        sent_at = ex._sent_at
        tail = tail % pick(
            (b"101", decimal(_ms(now - sent_at)), decimal(_ms(sent_at - ex.start)), ex.request_id.encode())
        )
    plugins = ex._plugins
    chain = ex._plugin_chain
    if plugins is not None and chain is not None and chain.has_header_filter:
        parts.append(tail[:-2])
        run_header_filter(plugins)
        parts += [f"{header}: {text}\r\n".encode("latin-1") for header, text in plugins.response_headers]
        parts.append(b"\r\n")
    else:
        parts.append(tail)
    return b"".join(parts)


def start_tunnel(ex: ExchangeBase, upstream: asyncio.Transport, first_down: bytes) -> None:
    """Rule 2's second half: the exchange's client connection and ``upstream`` joined by a ``Tunnel``.

    The upstream connection was taken out of the exchange (never pooled). ``first_down`` (what the upstream sent
    right after its 101) goes through the client connection's ``write``, behind the 101 head the upstream side may
    still hold corked; the rest flows straight between the transports. When the client side ends, the HTTP
    connection's own ``connection_lost`` runs (the access line with status 101 and the tunnelled bytes, the books).
    """
    conn = cast("HttpConnection", ex.conn)  # an upgrade is HTTP/1.1's: the exchange's connection is one
    service = ex._service
    ex._up = None
    client = conn.transport
    assert client is not None and service is not None
    label = ex._upstream_label()

    def on_client_lost(exc: Exception | None) -> None:
        ex.bytes_sent = tunnel.bytes_down
        conn.connection_lost(exc)

    def on_timeout(who: str) -> None:
        conn.state.error_log.error(
            f"{who} timed out (110: Connection timed out) while proxying upgraded connection",
            conn.conn_id,
            ex._context(label),
        )

    tunnel = Tunnel(client, upstream, service.read_timeout, service.write_timeout, on_client_lost, on_timeout)
    if first_down:
        conn.write(first_down)
        tunnel.bytes_down += len(first_down)
    tunnel.start()


def _ms(seconds: float) -> int:
    return int(seconds * 1000) if seconds > 0 else 0
