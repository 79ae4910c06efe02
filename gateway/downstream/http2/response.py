"""An exchange's HTTP/1.1 response bytes turned into one HTTP/2 stream's HEADERS and DATA.

Why a translator and not a second exchange: the exchange (``proxy.exchange``) writes Kong's response as HTTP/1.1
bytes, generated answers and proxied heads alike, with every header rule in one place. An h2 stream hands the
exchange a connection-like adaptor (``http2.stream.H2Stream``) whose ``write`` feeds this translator: llhttp
(httptools' response parser) splits the head from the body and undoes any chunked framing, the head becomes
``:status`` plus the headers minus the connection-specific ones HTTP/2 forbids (RFC 9113 8.2.2: ``Connection``,
``Keep-Alive``, ``Proxy-Connection``, ``Transfer-Encoding``, ``Upgrade``), and the body passes as it is.

Rules:

1. A 1xx head (``100 Continue``) is an informational HEADERS frame; the final head follows.
2. The message's end (llhttp's ``on_message_complete``) ends the stream; a close-delimited body (the exchange frames
   an HTTP/2.0 client's response like an HTTP/1.0 one's: no length, no chunks) ends when the exchange finishes.
3. After a ``HEAD`` request the head ends the stream at once (there is no body, whatever ``Content-Length`` says).
"""

from __future__ import annotations

from collections.abc import Callable

import httptools

__all__ = ["HOP_BY_HOP", "ResponseTranslator"]

#: connection-specific response headers: never sent on an HTTP/2 stream (lowercase, as HTTP/2 names are)
HOP_BY_HOP = frozenset((b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"))

Headers = list[tuple[bytes, bytes]]


class ResponseTranslator:
    """Feeds HTTP/1.1 response bytes to llhttp and reports a head, body bytes and the end.

    Args:
        on_head: ``(headers, informational, end_stream)`` with ``:status`` first, names lowercase.
        on_data: body bytes, as they arrive.
        on_end: the response message is complete.
        head_only: the request was ``HEAD`` (rule 3).
    """

    __slots__ = ("_headers", "_on_data", "_on_end", "_on_head", "_parser", "_status", "done", "head_only")

    def __init__(
        self,
        on_head: Callable[[Headers, bool, bool], None],
        on_data: Callable[[bytes], None],
        on_end: Callable[[], None],
        head_only: bool,
    ) -> None:
        self._on_head = on_head
        self._on_data = on_data
        self._on_end = on_end
        self.head_only = head_only
        self._parser = httptools.HttpResponseParser(self)
        self._headers: Headers = []
        self._status = 0
        #: the final response's end was reported (the stream is ended)
        self.done = False

    def feed(self, data: bytes) -> None:
        """One ``write`` of the exchange; bytes after the end (there are none from a well-behaved exchange) are
        dropped."""
        if self.done:
            return
        self._parser.feed_data(data)

    def release(self) -> None:
        """Break the parser's reference cycle (its callbacks are this object's methods)."""
        self._parser = _SPENT

    # llhttp callbacks ---------------------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._headers = []

    def on_header(self, name: bytes, value: bytes) -> None:
        lower = name.lower()
        if lower not in HOP_BY_HOP:
            self._headers.append((lower, value))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        self._status = status
        headers = [(b":status", b"%d" % status), *self._headers]
        self._headers = []
        if status < 200:
            self._on_head(headers, True, False)
            return
        if self.head_only:
            self.done = True
            self._on_head(headers, False, True)
            return
        self._on_head(headers, False, False)

    def on_body(self, body: bytes) -> None:
        if not self.done:
            self._on_data(body)

    def on_message_complete(self) -> None:
        if self._status < 200 or self.done:
            return
        self.done = True
        self._on_end()


class _NoCallbacks:
    """The protocol of the spent parser: no callbacks, so it holds no reference to anything."""


_SPENT = httptools.HttpResponseParser(_NoCallbacks())
