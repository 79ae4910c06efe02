"""The request an exchange writes as HTTP/1.1 bytes, turned into one HTTP/2 stream's HEADERS and DATA.

Why a translator: the exchange (``proxy.exchange``) builds the upstream request as HTTP/1.1 bytes, with every header
rule of Kong's (``TE``, ``Via``, ``Host``, ``X-Forwarded-*``, the client's headers) in one place; the downstream HTTP/2
side already works the same way in the other direction (``downstream.http2.response``). llhttp (httptools' request
parser) splits the head from the body and undoes the chunked framing an HTTP/2 client's body gets; the head becomes
the pseudo-headers and the rest.

Rules (RFC 9113 8.2.2 and 8.3.1, nginx's ``grpc_pass``):

1. ``:method``, ``:scheme`` (``http`` for ``grpc``, ``https`` for ``grpcs``), ``:authority`` from ``Host`` (the
   ``$upstream_host`` the exchange chose), ``:path`` the upstream URI; names lowercase.
2. Connection-specific headers are dropped (``Connection``, ``Keep-Alive``, ``Proxy-Connection``,
   ``Transfer-Encoding``, ``Upgrade``, and ``Host`` which became ``:authority``); ``TE`` passes only as ``trailers``.
3. A request without a body ends the stream on its HEADERS; otherwise the body's end ends it (an empty DATA frame
   when the last bytes already went).
"""

from __future__ import annotations

from collections.abc import Callable

import httptools

__all__ = ["CONNECTION_SPECIFIC", "Headers", "RequestTranslator"]

Headers = list[tuple[bytes, bytes]]

#: request headers never sent on an HTTP/2 stream (lowercase); ``te`` is handled apart (rule 2)
CONNECTION_SPECIFIC = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade", b"host")
)


class RequestTranslator:
    """Feeds HTTP/1.1 request bytes to llhttp and reports the h2 head, body bytes and the end.

    Args:
        scheme: ``b"http"`` or ``b"https"`` (rule 1).
        on_head: ``(headers, end_stream)``, pseudo-headers first.
        on_data: body bytes, as they arrive.
        on_end: the request is complete (after a head that did not end the stream).
    """

    __slots__ = (
        "_authority",
        "_end_seen",
        "_fields",
        "_head_pending",
        "_on_data",
        "_on_end",
        "_on_head",
        "_parser",
        "_scheme",
        "_url",
        "failed",
    )

    def __init__(
        self,
        scheme: bytes,
        on_head: Callable[[Headers, bool], None],
        on_data: Callable[[bytes], None],
        on_end: Callable[[], None],
    ) -> None:
        self._scheme = scheme
        self._on_head = on_head
        self._on_data = on_data
        self._on_end = on_end
        self._parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._authority = b""
        self._fields: Headers = []
        self._head_pending: Headers | None = None
        self._end_seen = False
        #: the bytes were not a request llhttp accepts (a bug of ours: the exchange wrote them)
        self.failed = False

    def feed(self, data: bytes) -> None:
        """One write of the exchange; the head goes out once the read that completed it is parsed (rule 3)."""
        if self.failed or self._end_seen:
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self.failed = True
            return
        head = self._head_pending
        if head is not None:
            self._head_pending = None
            self._on_head(head, False)

    def release(self) -> None:
        """Break the reference cycles (the parser calls this object, which calls its stream): freed without the
        cyclic collector."""
        self._parser = _SPENT
        self._on_head = _ignore_head
        self._on_data = self._on_end = _ignore

    # llhttp callbacks ---------------------------------------------------------------------------------------
    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        lower = name.lower()
        if lower == b"host":
            self._authority = value
        elif lower == b"te":
            if value.strip().lower() == b"trailers":
                self._fields.append((lower, b"trailers"))
        elif lower not in CONNECTION_SPECIFIC:
            self._fields.append((lower, value))

    def on_headers_complete(self) -> None:
        method = self._parser.get_method()
        self._head_pending = [
            (b":method", method),
            (b":scheme", self._scheme),
            (b":authority", self._authority),
            (b":path", self._url),
            *self._fields,
        ]
        self._fields = []

    def on_body(self, body: bytes) -> None:
        head = self._head_pending
        if head is not None:
            self._head_pending = None
            self._on_head(head, False)
        if body:
            self._on_data(body)

    def on_message_complete(self) -> None:
        self._end_seen = True
        head = self._head_pending
        if head is not None:  # no body: the head ends the stream
            self._head_pending = None
            self._on_head(head, True)
            return
        self._on_end()


def _ignore_head(headers: Headers, end: bool) -> None:
    pass


def _ignore(*_: object) -> None:
    pass


class _NoCallbacks:
    """The protocol of the spent parser: no callbacks, so it holds no reference to anything."""


_SPENT = httptools.HttpRequestParser(_NoCallbacks())
