"""Downstream HTTP/1.1: one protocol class per parser, identical constructors, chosen by ``http_parser``.

- ``HttpToolsProtocol`` (default): llhttp through httptools, the fast path.
- ``H11Protocol`` (``http_parser = h11``): the pure-Python, spec-strict alternative.

Both only translate parser events into the ``HttpConnection`` calls (``_message_begin``,
``_head_complete``, ``_body``, ``_message_complete``, ``_reject``); the request cycle, limits and timers
are shared (``connection.py``). Checks the parsers do not do are in ``request.check_head``; the
incremental ones (a request line or header line growing past the buffer size before the head is
complete) are done here, because only the parser callbacks see partial lines.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Final, cast

import h11
import httptools

from gateway.downstream.connection import HttpConnection
from gateway.downstream.request import HeadRejected, RequestHead

if TYPE_CHECKING:
    from gateway.downstream.shared import SharedState
    from gateway.settings import Listener

__all__ = ["PROTOCOLS", "H11Protocol", "HttpToolsProtocol"]

_HEAD: Final = 1
_IDLE: Final = 0

#: the version tokens read from the request line's bytes (any other goes through ``get_http_version``)
_VERSIONS: Final = {b"HTTP/1.1": "1.1", b"HTTP/1.0": "1.0"}


def version_at(chunk: bytes, method: bytes, url: bytes) -> str | None:
    """The request's HTTP version read from ``chunk``, the bytes its message began at, or None when they do not say.

    Why: httptools gives the version only as ``get_http_version()``, a ``str.format`` of two integers per request
    (~1,900 instructions, 3.5% of a proxied S1 request). llhttp took the request line from these same bytes, so where
    the line begins at ``chunk[0]`` (a space right after the method: no leading CRLF, which llhttp skips) the version
    token lies at ``len(method) + 1 + len(url) + 1``; an extra space or a short chunk (the line split across reads)
    puts other bytes there, and anything but ``HTTP/1.1`` or ``HTTP/1.0`` is left to httptools.
    """
    size = len(method)
    if len(chunk) <= size or chunk[size] != 32:
        return None
    at = size + len(url) + 2
    return _VERSIONS.get(chunk[at : at + 8])


class _NoCallbacks:
    """The protocol of the spent parser: no callbacks, so the parser holds no reference to anything."""


#: what a closed ``HttpToolsProtocol`` keeps instead of its parser (never fed: ``data_received`` stops first)
_SPENT_PARSER = httptools.HttpRequestParser(_NoCallbacks())


class HttpToolsProtocol(HttpConnection):
    """llhttp-based downstream connection."""

    __slots__ = ("_between", "_chunk", "_head_bytes", "_headers", "_line_chunk", "_parser", "_upgrade", "_url")

    def __init__(self, state: SharedState, listener: Listener, loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(state, listener, loop)
        self._parser = httptools.HttpRequestParser(self)
        self._url = b""
        #: decoded as they arrive (latin-1: one char per byte), so the head takes the list as it is
        self._headers: list[tuple[str, str]] = []
        self._head_bytes = 0
        #: the head has an ``Upgrade`` header: only then (or for CONNECT) can llhttp take it for an upgrade
        self._upgrade = False
        #: llhttp is between messages (the last one complete): bytes fed now can have a message begin at their start
        self._between = True
        #: the bytes being fed when llhttp was between messages, and the bytes the current message began in: where
        #: ``version_at`` reads the version (None: unknown, ask httptools)
        self._chunk: bytes | None = None
        self._line_chunk: bytes | None = None

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        # The parser's callbacks are bound methods of this object, a reference cycle: drop it, so that the closed
        # connection is freed by reference counting rather than by the collector's rare oldest-generation passes.
        self._parser = _SPENT_PARSER

    def data_received(self, data: bytes) -> None:
        if self._broken:
            return
        if self._phase == _HEAD:
            self._head_bytes += len(data)
            limits = self.limits
            if self._head_bytes > limits.total + limits.buffer_size:
                self._reject(494, "client sent too large request")
                return
        self._chunk = data if self._between else None
        try:
            self._parser.feed_data(data)
        except HeadRejected as exc:
            self._reject(exc.status, exc.reason)
        except httptools.HttpParserUpgrade:
            # no protocol upgrade support: the head was dispatched; what follows is not HTTP/1.1
            pass
        except httptools.HttpParserError as error:  # not ``exc`` again: mypyc gives a name one type per function
            cause = error.__context__
            if isinstance(cause, HeadRejected):
                self._reject(cause.status, cause.reason)
            else:
                self._reject(400, f"client sent invalid request: {error}")

    # httptools callbacks -------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._head_bytes = 0
        self._upgrade = False
        self._line_chunk = self._chunk  # only the first message begun in these bytes can begin at their start
        self._chunk = None
        self._between = False
        self._message_begin()

    def on_url(self, url: bytes) -> None:
        # the whole target in one callback is the rule: keep httptools' bytes (a ``+=`` onto b"" copies them)
        before = self._url
        self._url = before + url if before else url
        if len(self._url) > self.limits.buffer_size:
            raise HeadRejected(414, "client sent too long URI")

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) + len(value) + 2 > self.limits.buffer_size:
            raise HeadRejected(494, "client sent too long header line")
        if len(name) == 7 and name.lower() == b"upgrade":
            self._upgrade = True
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        parser = self._parser
        raw_method = parser.get_method()
        method = raw_method.decode("latin-1")
        url = self._url
        chunk = self._line_chunk
        version = None
        if chunk is not None:
            self._line_chunk = None
            version = version_at(chunk, raw_method, url)
        if version is None:
            version = parser.get_http_version()
        head = RequestHead(method, url.decode("latin-1"), version, self._headers, parser.should_keep_alive())
        # llhttp's upgrade: an Upgrade header with "upgrade" in Connection, or CONNECT; asked only when it can be
        if (self._upgrade or method == "CONNECT") and parser.should_upgrade():
            head.keep_alive = False
        self._headers = []
        self._head_complete(head)

    def on_body(self, body: bytes) -> None:
        self._body(body)

    def on_message_complete(self) -> None:
        self._between = True
        self._message_complete()


class H11Protocol(HttpConnection):
    """h11-based downstream connection (one ``h11.Connection`` per request, fed the leftover bytes)."""

    __slots__ = ("_h11",)

    def __init__(self, state: SharedState, listener: Listener, loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(state, listener, loop)
        self._h11 = self._new_parser()

    def _new_parser(self) -> h11.Connection:
        limits = self.limits
        return h11.Connection(h11.SERVER, max_incomplete_event_size=limits.total + limits.buffer_size)

    def data_received(self, data: bytes) -> None:
        if self._broken:
            return
        if self._phase == _IDLE and self.parsing is None:
            self._message_begin()
        if self._phase == _HEAD:
            end = data.find(b"\r\n\r\n")
            segment = data if end == -1 else data[:end]
            if b"\n " in segment or b"\n\t" in segment:
                self._reject(400, "client sent invalid header line (obs-fold)")
                return
            if segment.lower().count(b"\ncontent-length:") > 1:
                # h11 merges equal repeated Content-Length headers before we could see them
                self._reject(400, 'client sent duplicate header line: "Content-Length"')
                return
        self._h11.receive_data(data)
        self._drain()

    def _drain(self) -> None:
        while not self._broken:
            conn = self._h11
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                status = exc.error_status_hint
                if status == 431:
                    buffered = _copy(cast(Any, conn).trailing_data[0])
                    status = 414 if b"\n" not in buffered else 494
                self._reject(status, f"client sent invalid request: {exc}")
                return
            if event is h11.NEED_DATA:
                return
            if event is h11.PAUSED:
                leftover = _copy(cast(Any, conn).trailing_data[0])
                self._h11 = self._new_parser()
                if not leftover:
                    return
                self._message_begin()
                self._h11.receive_data(leftover)
                continue
            if isinstance(event, h11.Request):
                version = event.http_version.decode("latin-1")
                headers = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in event.headers.raw_items()]
                tokens = ",".join(v for n, v in headers if n.lower() == "connection").lower()
                listed = {t.strip() for t in tokens.split(",")}
                keep_alive = "close" not in listed if version == "1.1" else "keep-alive" in listed
                head = RequestHead(
                    event.method.decode("latin-1"), event.target.decode("latin-1"), version, headers, keep_alive
                )
                self._head_complete(head)
            elif isinstance(event, h11.Data):
                self._body(_copy(cast(Any, event).data))
            elif isinstance(event, h11.EndOfMessage):
                self._message_complete()
                if conn.their_state is h11.MUST_CLOSE and not self._broken:
                    # an HTTP/1.0 request: h11 expects the close, but a keep-alive one may be followed by another
                    leftover = _copy(cast(Any, conn).trailing_data[0])
                    self._h11 = self._new_parser()
                    if leftover:
                        self._message_begin()
                        self._h11.receive_data(leftover)
            else:  # ConnectionClosed
                return


def _copy(data: bytes | bytearray) -> bytes:
    """A buffer of h11's as bytes. h11 types them as bytes but hands out bytearrays; mypyc, trusting the stub, would
    check an attribute read as bytes (and fail): the callers read them through ``Any``."""
    return bytes(data)


PROTOCOLS: dict[str, type[HttpConnection]] = {"httptools": HttpToolsProtocol, "h11": H11Protocol}
