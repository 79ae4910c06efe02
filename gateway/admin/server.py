"""The Admin API's HTTP/1.1 server: asyncio streams and h11 (spec-strict; this is not the hot path).

One task per connection reads bytes into an ``h11.Connection``, hands each complete request to
``AdminApp.handle`` and writes the response; keep-alive and pipelining follow h11's state machine.
A malformed request gets a 400 and the connection is closed, as nginx does. TLS listeners (``ssl``) are
not served yet: they are skipped with an error-log notice.
"""

from __future__ import annotations

import asyncio
import email.utils
import socket
from typing import Any

import h11

from gateway.admin.app import AdminApp
from gateway.settings import Listener

__all__ = ["AdminApp", "start_admin_server"]

_READ_SIZE = 65536
_MAX_HEAD = 64 * 1024


def _date() -> str:
    return email.utils.formatdate(usegmt=True)


async def _serve(app: AdminApp, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    peer: Any = writer.get_extra_info("peername")
    remote = peer[0] if isinstance(peer, tuple) and peer else "127.0.0.1"
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_HEAD)
    try:
        while True:
            request: h11.Request | None = None
            body: list[bytes] = []
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = await reader.read(_READ_SIZE)
                    conn.receive_data(data)
                    if not data and conn.their_state is not h11.DONE:
                        return
                    continue
                if isinstance(event, h11.Request):
                    request = event
                elif isinstance(event, h11.Data):
                    body.append(bytes(event.data))
                elif isinstance(event, h11.EndOfMessage):
                    break
                elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                    return
            assert request is not None
            headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers]
            status, out_headers, out_body = await app.handle(
                request.method.decode("ascii"),
                request.target.decode("latin-1"),
                headers,
                b"".join(body),
                remote,
                request.http_version.decode("ascii"),
            )
            response_headers = [("Date", _date()), *out_headers]
            writer.write(conn.send(h11.Response(status_code=status, headers=response_headers)) or b"")
            if out_body:
                writer.write(conn.send(h11.Data(data=out_body)) or b"")
            writer.write(conn.send(h11.EndOfMessage()) or b"")
            await writer.drain()
            if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                return
            conn.start_next_cycle()
    except h11.RemoteProtocolError as exc:
        if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            page = b'{"message":"Bad request"}'
            status = exc.error_status_hint
            try:
                writer.write(
                    conn.send(
                        h11.Response(
                            status_code=status,
                            headers=[
                                ("Date", _date()),
                                ("Content-Type", "application/json; charset=utf-8"),
                                ("Content-Length", str(len(page))),
                                ("Connection", "close"),
                            ],
                        )
                    )
                    or b""
                )
                writer.write(conn.send(h11.Data(data=page)) or b"")
                writer.write(conn.send(h11.EndOfMessage()) or b"")
                await writer.drain()
            except (h11.LocalProtocolError, ConnectionError):
                pass
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionError, OSError):
            pass


async def start_admin_server(app: AdminApp, listener: Listener) -> asyncio.base_events.Server:
    """Listen on one ``admin_listen`` entry. ``ssl`` is not supported yet: the entry is served in plain
    HTTP would be wrong, so it is refused with an error-log notice and a ``ValueError``."""
    if listener.ssl:
        app.error_log.error(
            f"[admin] TLS admin listener {listener.host}:{listener.port} ssl is not supported yet; not listening"
        )
        raise ValueError(f"ssl admin listener {listener.host}:{listener.port} is not supported")

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await _serve(app, reader, writer)
        except asyncio.CancelledError:
            # Shutdown cancels idle keep-alive connections; the socket is closed by ``_serve``'s finally.
            return

    family = socket.AF_INET6 if ":" in listener.host else socket.AF_INET
    server = await asyncio.start_server(
        on_connection,
        host=listener.host,
        port=listener.port,
        family=family,
        backlog=listener.backlog,
        reuse_port=listener.reuseport or None,
        reuse_address=True,
    )
    return server
