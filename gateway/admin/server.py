"""The Admin API's HTTP/1.1 server: asyncio streams and h11 (spec-strict; this is not the hot path).

One task per connection (``_Connection.serve``) reads bytes into an ``h11.Connection``, reads each request's body
in full, hands the request to ``AdminApp.handle`` and writes the response; keep-alive and pipelining follow h11's
state machine. TLS listeners (``ssl``) are not served yet: they are skipped with an error-log notice.

Limits, as nginx applies them to Kong's admin ``server`` block (``kong/templates/nginx_kong.lua``, where
``kong_defaults.lua`` injects ``nginx_admin_client_max_body_size = 10m``; nginx's defaults for the rest):

- **Body size**: at most ``MAX_BODY`` (10 MiB). A larger ``Content-Length`` is refused with 413 as soon as the head
  is in, before any of the body is read (and without ``100 Continue``); a chunked body is refused as soon as it
  grows past the limit, so no more than the limit is ever held. nginx's ``error`` line says ``client intended to
  send too large body: N bytes`` (``... too large chunked body: N+M bytes``). The 413 is nginx's HTML page (the
  admin block has no ``error_page``) with ``Connection: close``; the connection then *lingers* as nginx's
  ``lingering_close`` does: our side is shut for writing and whatever the client still sends is read and dropped,
  up to ``LINGERING_TIMEOUT`` between reads and ``LINGERING_TIME`` in all, so that the client reads the 413
  instead of a reset.
- **Timeouts** (the ``client_header_timeout``, ``client_body_timeout`` and ``keepalive_timeout`` settings, shared
  with the proxy listeners), per phase of the connection: ``deadline.py`` has the table, measured against nginx.
- **Malformed input**: a head or a chunked body h11 refuses gets nginx's HTML 400 page and the connection is
  closed; a client closing in the middle of a request gets nginx's ``client prematurely closed connection`` line
  and a 400 in the access log. Bodies that are well framed but not valid JSON/form/multipart are the app's business
  (``bodies.py``): 400 with Kong's JSON.
"""

from __future__ import annotations

import asyncio
import email.utils
import socket
from typing import Any

import h11

from gateway.admin.app import SERVER_NAME, AdminApp
from gateway.admin.deadline import Deadline, Phase
from gateway.admin.http import REASONS, Request
from gateway.observability.errorlog import request_context
from gateway.settings import Listener

__all__ = [
    "LINGERING_TIME",
    "LINGERING_TIMEOUT",
    "MAX_BODY",
    "SEND_TIMEOUT",
    "AdminApp",
    "start_admin_server",
]

MAX_BODY = 10 * 1024 * 1024
"""Kong's ``nginx_admin_client_max_body_size = 10m``."""
SEND_TIMEOUT = 60.0
"""nginx's ``send_timeout`` default (not a setting here)."""
LINGERING_TIMEOUT = 5.0
"""nginx's ``lingering_timeout`` default: the longest wait for more of a refused body."""
LINGERING_TIME = 30.0
"""nginx's ``lingering_time`` default: the longest a refused body is read and dropped."""

_READ_SIZE = 65536
_MAX_HEAD = 64 * 1024
_TIMED_OUT = "client timed out (110: Connection timed out)"


def _date() -> str:
    return email.utils.formatdate(usegmt=True)


def _partial_head(data: bytes) -> tuple[str, str | None, bool]:
    """What nginx knows of a head still being read: the (partial) request line, the Host header if its line is
    complete, and whether the request line itself is complete."""
    data = data.lstrip(b"\r\n")
    lines = data.split(b"\n")
    line = lines[0].rstrip(b"\r").decode("latin-1")
    host = None
    for raw in lines[1:-1]:
        name, sep, value = raw.partition(b":")
        if sep and name.strip().lower() == b"host":
            host = value.strip().decode("latin-1")
            break
    return line, host, len(lines) > 1


class _Connection:
    """One Admin API connection; see the module docstring."""

    __slots__ = (
        "app",
        "conn_id",
        "deadline",
        "h11",
        "head",
        "line",
        "phase",
        "reader",
        "remote",
        "request",
        "server_addr",
        "task",
        "writer",
    )

    def __init__(self, app: AdminApp, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.app = app
        self.reader = reader
        self.writer = writer
        peer: Any = writer.get_extra_info("peername")
        self.remote = peer[0] if isinstance(peer, tuple) and peer else "127.0.0.1"
        local: Any = writer.get_extra_info("sockname")
        self.server_addr = f"{local[0]}:{local[1]}" if isinstance(local, tuple) and len(local) >= 2 else SERVER_NAME
        self.conn_id = app.next_connection()
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_HEAD)
        task = asyncio.current_task()
        assert task is not None
        self.task = task
        self.deadline = Deadline(asyncio.get_running_loop(), task)
        self.phase = Phase.WAITING
        self.request: h11.Request | None = None
        self.line = ""
        self.head = bytearray()
        """The first bytes of the head being read (bounded): what nginx logs of a request that never completed."""

    # ------------------------------------------------------------------ the connection
    async def serve(self) -> None:
        """Serve requests until the connection ends; never raises, except the shutdown's cancellation."""
        self.deadline.arm(self.app.settings.client_header_timeout)
        abort = False
        try:
            while await self._one_request():
                self.h11.start_next_cycle()
                self.request, self.line = None, ""
                self.head = bytearray(self.h11.trailing_data[0][:_MAX_HEAD])
                if self.head:  # a pipelined request is already here
                    self.phase = Phase.HEAD
                    self.deadline.arm(self.app.settings.client_header_timeout)
                else:
                    self.phase = Phase.KEEPALIVE
                    self.deadline.arm(self.app.settings.keepalive_timeout)
        except asyncio.CancelledError:
            if not self._own_timeout():
                raise
            abort = self._timed_out()
        except OSError:  # reset by the peer, or a write to a closed socket
            abort = True
        except Exception as exc:  # a bug here must not end as a traceback on stderr
            self.app.error_log.error(f"[admin] connection failed: {exc!r}", self.conn_id, self._context())
            abort = True
        finally:
            await self._close(abort)

    async def _one_request(self) -> bool:
        """Read, handle and answer one request; True when the connection stays open for the next one."""
        request = await self._read_head()
        if request is None:
            return False
        body = await self._read_body(request)
        if body is None:
            return False
        self.phase = Phase.HANDLING
        self.deadline.disarm()
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers]
        status, out_headers, out_body = await self.app.handle(
            request.method.decode("ascii"),
            request.target.decode("latin-1"),
            headers,
            body,
            self.remote,
            request.http_version.decode("ascii"),
            self.conn_id,
        )
        if self.app.settings.keepalive_timeout == 0:
            out_headers = [*out_headers, ("Connection", "close")]
        await self._send(status, out_headers, out_body)
        return self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE

    async def _receive(self) -> bytes:
        data = await self.reader.read(_READ_SIZE)
        if data:
            self.h11.receive_data(data)
            if self.request is None and len(self.head) < _MAX_HEAD:
                self.head += data[: _MAX_HEAD - len(self.head)]
        return data

    def _own_timeout(self) -> bool:
        """Whether the ``CancelledError`` being handled is our deadline's (then it is consumed) or the shutdown's."""
        if not self.deadline.expired:
            return False
        self.deadline.expired = False
        self.task.uncancel()
        return True

    # ------------------------------------------------------------------ reading
    async def _read_head(self) -> h11.Request | None:
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as exc:
                # h11's 431 (head too large) and 400 are nginx's 400 here; an unknown Transfer-Encoding is 501
                status = 501 if exc.error_status_hint == 501 else 400
                self._head_line(f"client sent {'too large' if exc.error_status_hint == 431 else 'invalid'} request")
                await self._refuse(status)
                return None
            if isinstance(event, h11.Request):
                self.request = event
                self.line = (
                    f"{event.method.decode('ascii')} {event.target.decode('latin-1')} "
                    f"HTTP/{event.http_version.decode('ascii')}"
                )
                names = {name for name, _ in event.headers}
                if b"content-length" in names and b"transfer-encoding" in names:
                    self._log(
                        "info",
                        'client sent "Content-Length" and "Transfer-Encoding" headers at the same time '
                        "while reading client request headers",
                    )
                    await self._refuse(400)
                    return None
                return event
            if event is not h11.NEED_DATA:
                return None
            if not await self._receive():
                self._client_closed()
                return None
            if self.phase is Phase.KEEPALIVE:
                self.deadline.arm(self.app.settings.client_header_timeout)
            self.phase = Phase.HEAD

    async def _read_body(self, request: h11.Request) -> bytes | None:
        """The whole body (``b""`` when there is none), or None when the request was refused or abandoned."""
        length = next((int(v) for k, v in request.headers if k == b"content-length"), None)
        if length is not None and length > MAX_BODY:
            self._log("error", f"client intended to send too large body: {length} bytes")
            await self._refuse(413)
            return None
        chunked = any(name == b"transfer-encoding" for name, _ in request.headers)
        if self.h11.they_are_waiting_for_100_continue and (chunked or length):
            proceed = h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue")
            self.writer.write(self.h11.send(proceed) or b"")
        self.phase = Phase.BODY
        timeout = self.app.settings.client_body_timeout
        self.deadline.arm(timeout)
        parts: list[bytes] = []
        size = 0
        chunk_base = 0
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError:
                self._log("error", "client sent invalid chunked body")
                await self._refuse(400)
                return None
            if event is h11.NEED_DATA:
                if not await self._receive():
                    self._client_closed()
                    return None
                self.deadline.arm(timeout)
            elif isinstance(event, h11.Data):
                if event.chunk_start:
                    chunk_base = size
                if size + len(event.data) > MAX_BODY:
                    received = size + len(event.data) - chunk_base
                    self._log("error", f"client intended to send too large chunked body: {chunk_base}+{received} bytes")
                    await self._refuse(413)
                    return None
                parts.append(bytes(event.data))
                size += len(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return b"".join(parts)
            else:
                return None

    # ------------------------------------------------------------------ writing
    async def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        """Write one response, re-arming ``SEND_TIMEOUT`` for every slice that has to wait for the client."""
        self.phase = Phase.SENDING
        conn, writer = self.h11, self.writer
        head = h11.Response(status_code=status, headers=[("Date", _date()), *headers], reason=REASONS.get(status, ""))
        writer.write(conn.send(head) or b"")
        for start in range(0, len(body), _READ_SIZE):
            writer.write(conn.send(h11.Data(data=body[start : start + _READ_SIZE])) or b"")
            self.deadline.arm(SEND_TIMEOUT)
            await writer.drain()
        writer.write(conn.send(h11.EndOfMessage()) or b"")
        self.deadline.arm(SEND_TIMEOUT)
        await writer.drain()
        self.deadline.disarm()

    async def _refuse(self, status: int) -> None:
        """Answer nginx's own page for ``status`` (with ``Connection: close``), log it, then linger."""
        headers, page = self.app.nginx_page(status)
        self._log_access(status, len(page))
        try:
            await self._send(status, headers, page)
        except h11.LocalProtocolError:  # h11 cannot frame a response in this state: just close
            return
        await self._linger()

    async def _linger(self) -> None:
        """nginx's lingering close: shut our side, read and drop what the client still sends (bounded)."""
        self.phase = Phase.LINGERING
        if self.writer.can_write_eof():
            self.writer.write_eof()
        loop = asyncio.get_running_loop()
        until = loop.time() + LINGERING_TIME
        while True:
            self.deadline.arm_at(min(loop.time() + LINGERING_TIMEOUT, until))
            if not await self.reader.read(_READ_SIZE):
                return

    async def _close(self, abort: bool) -> None:
        """Close the socket: gracefully (what is still buffered is sent, within ``SEND_TIMEOUT``) or by a reset."""
        if not abort:
            self.writer.close()
            self.deadline.arm(SEND_TIMEOUT)
            try:
                await self.writer.wait_closed()
            except asyncio.CancelledError:
                if not self._own_timeout():
                    self.deadline.close()
                    raise
                abort = True
            except OSError:
                pass
        self.deadline.close()
        if abort:
            self.writer.transport.abort()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass

    # ------------------------------------------------------------------ endings
    def _timed_out(self) -> bool:
        """The deadline of ``self.phase`` passed: nginx's line and access log entry; True to reset the socket."""
        phase = self.phase
        if phase is Phase.WAITING:
            self._log("info", f"{_TIMED_OUT} while waiting for request", self._listener_context())
        elif phase is Phase.HEAD:
            self._head_line(_TIMED_OUT)
            self._log_access(408, 0)
        elif phase is Phase.BODY:
            self._log_access(408, 0)
        elif phase is Phase.SENDING:
            self._log("info", _TIMED_OUT)
            return True
        return False

    def _client_closed(self) -> None:
        """The client closed its side before its request was complete."""
        phase = self.phase
        if phase is Phase.WAITING:
            self._log("info", "client closed connection while waiting for request", self._listener_context())
        elif phase is Phase.HEAD:
            self._head_line("client prematurely closed connection")
            self._log_access(400, 0)
        elif phase is Phase.BODY:
            self._log("info", "client prematurely closed connection")
            self._log_access(400, 0)

    def _head_line(self, what: str) -> None:
        """An ``info`` line about a head that never completed, with what nginx has of its request line and Host."""
        line, host, line_complete = _partial_head(bytes(self.head))
        self.line = line
        action = "reading client request headers" if line_complete else "reading client request line"
        self._log(
            "info", f"{what} while {action}", request_context(self.remote, line or None, host=host, server=SERVER_NAME)
        )

    def _log(self, level: str, message: str, context: str | None = None) -> None:
        """One error-log line about this connection, with the request's context unless one is given."""
        log = self.app.error_log
        if log.enabled(level):
            log.log(level, message, self.conn_id, self._context() if context is None else context)

    def _listener_context(self) -> str:
        """Before a request exists nginx names the listening address as the server."""
        return f", client: {self.remote}, server: {self.server_addr}"

    def _context(self) -> str:
        host = None
        if self.request is not None:
            host = next((v.decode("latin-1") for k, v in self.request.headers if k == b"host"), None)
        return request_context(self.remote, self.line or None, host=host, server=SERVER_NAME)

    def _log_access(self, status: int, sent: int) -> None:
        headers: list[tuple[str, str]] = []
        if self.request is not None:
            headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in self.request.headers]
        self.app.log_access(Request("", "", headers=headers, remote_addr=self.remote), status, sent, self.line)


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
            await _Connection(app, reader, writer).serve()
        except asyncio.CancelledError:
            # Shutdown cancels idle keep-alive connections; the socket is closed by ``serve``'s finally.
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
