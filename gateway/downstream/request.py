"""A parsed request head, and the checks the parsers do not do (shared by httptools and h11).

Rules, in the order they are checked (nginx 1.22 behaviour, which Kong inherits):

- Request line longer than one large header buffer (``large_client_header_buffers`` size, 8k) -> **414**.
- One header line longer than that buffer, or the whole head larger than count x size -> **494**, which
  Kong's error handler sends as ``400`` with ``Request header or cookie too large``. We keep nginx's
  494 internally rather than 431: Kong users see exactly Kong's 400 and its message, and the access log
  records 400 as Kong's does.
- Two ``Host`` headers, or HTTP/1.1 without ``Host`` -> 400.
- ``Content-Length`` with ``Transfer-Encoding``, repeated ``Content-Length`` (even equal), a
  ``Content-Length`` that is not digits -> 400 (request smuggling shapes).
- ``Transfer-Encoding`` other than exactly ``chunked`` -> **501** (nginx "unknown Transfer-Encoding");
  ``Transfer-Encoding`` in an HTTP/1.0 request -> 400.
- ``Content-Length`` above ``client_max_body_size`` (when non-zero) -> **413**.
- A header whose name has a character other than ASCII letters, digits and ``-`` (and ``_`` with
  ``underscores_in_headers = on``) is *invalid*: with ``ignore_invalid_headers = on`` (nginx's default) it is
  dropped from ``head.headers`` here, before routing (route ``headers``), plugins and the upstream see it, and
  the request goes on. nginx logs one ``info`` line per dropped header as it reads it (``client sent invalid
  header line: "<name>: <value>"`` with the request line, and the ``Host`` / ``Referer`` read *before* that
  line); ``check_head`` records what that line needs in ``head.dropped`` and the connection writes it, so no
  string is formatted below the log level. Why it matters: ``X_Consumer_Username`` next to the real
  ``X-Consumer-Username`` reaches a WSGI/CGI upstream as the same ``HTTP_X_CONSUMER_USERNAME``, and Kong's
  router folds ``-`` and ``_`` in route ``headers`` conditions. The only difference from nginx's line: nginx
  prints the raw bytes between the colon and the value, we print ``": "`` (the parsers strip that space).
  Both parsers only let token characters through in a name, so what can arrive here is ``_`` and the token
  punctuation (``!#$%&'*+.^`|~``); the check is a lookup in a per-listener cache of names already classified.
Both parsers already reject NUL/CR in values, a space before the colon and bad chunk sizes; httptools
also rejects obs-fold, and the h11 protocol checks obs-fold itself before feeding h11.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Sequence
from typing import Final

__all__ = ["DroppedHeader", "HeadLimits", "HeadRejected", "RequestHead", "check_head", "host_var", "new_request_id"]

_getrandbits: Final = random.getrandbits
_IDS_PER_BATCH: Final = 64


class _RequestIds:
    """Request ids cut from a batch of random hex: one string slice per request, instead of an int, its bytes and
    their hex (three objects and two method calls). The same generator (``random``, reseeded in a forked child)
    and the same text: 32 lowercase hex characters, 128 random bits each."""

    __slots__ = ("at", "batch")

    def __init__(self) -> None:
        self.batch = ""
        self.at = 0

    def next(self) -> str:
        at = self.at
        if at >= len(self.batch):
            self.batch = _getrandbits(128 * _IDS_PER_BATCH).to_bytes(16 * _IDS_PER_BATCH, "big").hex()
            at = 0
        self.at = at + 32
        return self.batch[at : at + 32]

    def reset(self) -> None:
        """A forked worker must not hand out the ids left in its parent's batch."""
        self.batch = ""
        self.at = 0


_IDS: Final = _RequestIds()
os.register_at_fork(after_in_child=_IDS.reset)


def new_request_id() -> str:
    """32 lowercase hex characters (Kong: four random uint32 values), from ``_RequestIds``' current batch."""
    return _IDS.next()


def host_var(host: str | None) -> str:
    """nginx ``$host``: the Host header lowercased without its port, else the server name."""
    if not host:
        return "kong"
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1].lower() if end != -1 else host.lower()
    return host.split(":", 1)[0].lower()


class HeadRejected(Exception):
    """The client's request cannot be served: ``status`` is the nginx status to answer with, then close."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


#: an invalid header ``check_head`` dropped: name, value, and the ``Host`` / ``Referer`` read before it (what
#: nginx's log line shows); a plain tuple, not a NamedTuple, whose construction costs ten times more
DroppedHeader = tuple[str, str, str | None, str | None]


class HeadLimits:
    """Sizes and header-name rules from the settings, computed once per listener.

    ``names`` caches the kind of each header name as received (its case included): a client sends the same
    few names again and again, so the usual cost per header is one dict lookup, cheaper than the
    ``name.lower()`` it replaces. Names are client data, so the cache is bounded: long names are not kept,
    and a full cache is emptied (a client that sends many distinct names only costs itself the lookups).
    """

    __slots__ = ("_invalid_char", "buffer_size", "max_body", "names", "total")

    def __init__(
        self,
        buffer_size: int,
        buffer_count: int,
        max_body: int,
        underscores_in_headers: bool = False,
        ignore_invalid_headers: bool = True,
    ) -> None:
        self.buffer_size = buffer_size
        self.total = buffer_size * buffer_count
        self.max_body = max_body
        self.names: dict[str, int] = {}
        #: finds a character nginx's ``ngx_http_parse_header_line`` does not allow in a name; None: keep them all
        self._invalid_char = (
            None
            if not ignore_invalid_headers
            else _INVALID_WITH_UNDERSCORES.search
            if underscores_in_headers
            else _INVALID_CHAR.search
        )

    def classify(self, name: str) -> int:
        """The kind of header ``name`` (a ``_KINDS`` value, ``_OTHER`` or ``_INVALID``), cached in ``names``."""
        kind = _KINDS.get(name.lower())
        if kind is None:
            invalid = self._invalid_char
            kind = _INVALID if invalid is not None and invalid(name) is not None else _OTHER
        if len(name) <= _CACHED_NAME_LENGTH:
            names = self.names
            if len(names) >= _CACHED_NAMES:
                names.clear()
            names[name] = kind
        return kind


class RequestHead:
    """What the parser saw, decoded as latin-1 (one char per byte), plus the framing facts derived from it."""

    __slots__ = (
        "accept",
        "chunked",
        "connection",
        "content_length",
        "content_type",
        "dropped",
        "expect_continue",
        "headers",
        "host",
        "keep_alive",
        "method",
        "referer",
        "target",
        "te",
        "user_agent",
        "version",
        "via",
        "x_forwarded_for",
    )

    def __init__(
        self, method: str, target: str, version: str, headers: list[tuple[str, str]], keep_alive: bool
    ) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.keep_alive = keep_alive
        self.host: str | None = None
        self.accept: str | None = None
        self.content_type: str | None = None
        self.connection: str | None = None
        self.content_length: int | None = None
        self.chunked = False
        self.expect_continue = False
        # first values of the headers every proxied request (or its access-log line) reads, recorded by
        # ``check_head``'s one pass so the hot path does not scan the header list once per name
        self.te: str | None = None
        self.via: str | None = None
        self.x_forwarded_for: str | None = None
        self.referer: str | None = None
        self.user_agent: str | None = None
        #: the invalid headers ``check_head`` removed from ``headers``, in order (None: none, the usual case)
        self.dropped: list[DroppedHeader] | None = None

    @property
    def request_line(self) -> str:
        return f"{self.method} {self.target} HTTP/{self.version}"

    def get(self, lower_name: str) -> str | None:
        """First value of a header (Kong's ``get_header``); the ones ``check_head`` records are attributes."""
        for name, value in self.headers:
            if name.lower() == lower_name:
                return value
        return None

    @property
    def has_body(self) -> bool:
        return self.chunked or bool(self.content_length)


#: the header kinds of ``check_head`` (``_KINDS``)
_HOST: Final = 0
_CONTENT_LENGTH: Final = 1
_TRANSFER_ENCODING: Final = 2
_CONNECTION: Final = 3
_EXPECT: Final = 4
_ACCEPT: Final = 5
_CONTENT_TYPE: Final = 6
_TE: Final = 7
_VIA: Final = 8
_X_FORWARDED_FOR: Final = 9
_REFERER: Final = 10
_USER_AGENT: Final = 11
_OTHER: Final = 12  # a valid name check_head has nothing to do with
_INVALID: Final = 13  # a name nginx's ignore_invalid_headers drops
#: the lowercase header names ``check_head`` looks at: one dict lookup per header instead of a comparison chain
_KINDS: Final[dict[str, int]] = {
    "host": _HOST,
    "content-length": _CONTENT_LENGTH,
    "transfer-encoding": _TRANSFER_ENCODING,
    "connection": _CONNECTION,
    "expect": _EXPECT,
    "accept": _ACCEPT,
    "content-type": _CONTENT_TYPE,
    "te": _TE,
    "via": _VIA,
    "x-forwarded-for": _X_FORWARDED_FOR,
    "referer": _REFERER,
    "user-agent": _USER_AGENT,
}
_INVALID_CHAR: Final = re.compile(r"[^0-9A-Za-z-]")
_INVALID_WITH_UNDERSCORES: Final = re.compile(r"[^0-9A-Za-z_-]")
#: bounds of ``HeadLimits.names``: real header names are short and few
_CACHED_NAME_LENGTH: Final = 64
_CACHED_NAMES: Final = 1024


#: the kinds whose first value ``check_head`` records on the head as an attribute of the same meaning
_FIRST_VALUE: Final[dict[int, str]] = {
    _ACCEPT: "accept",
    _CONTENT_TYPE: "content_type",
    _TE: "te",
    _VIA: "via",
    _X_FORWARDED_FOR: "x_forwarded_for",
    _REFERER: "referer",
    _USER_AGENT: "user_agent",
}


def check_head(head: RequestHead, limits: HeadLimits, raw_lengths: Sequence[int] | None = None) -> None:
    """Derive framing fields on ``head`` and raise ``HeadRejected`` for what must not be served.

    ``raw_lengths`` are the header line lengths as received when the parser can provide them; otherwise
    ``len(name) + 2 + len(value)`` is used. Three steps: one pass over the headers (sizes, the kinds this
    module records), removing the invalid ones, then the framing rules on what the pass found.
    """
    total = len(head.method) + len(head.target) + 11
    if total > limits.buffer_size:
        raise HeadRejected(414, "client sent too long URI")
    scan = _scan_headers(head, limits, total)
    if head.dropped is not None:
        _remove_dropped(head, head.dropped)
    if scan[0] <= limits.total and scan[1] == 1 and scan[2] is None and not scan[4]:
        return  # the common head: small, one Host, no body framing (nothing for the framing rules to refuse)
    _check_framing(head, limits, scan)


#: what the pass over the headers found that the framing rules need (the rest is on the head): the head's size,
#: the number of ``Host`` headers, the last ``Transfer-Encoding`` and how many there were, the ``Content-Length``
#: values; a tuple, the cheapest thing to return on this path
_Scan = tuple[int, int, str | None, int, list[str]]


def _scan_headers(head: RequestHead, limits: HeadLimits, total: int) -> _Scan:
    """One pass: line and head sizes, the invalid names (recorded in ``head.dropped``), the framing headers."""
    size = limits.buffer_size
    hosts = 0
    te: str | None = None
    te_count = 0
    cl_values: list[str] = []
    dropped: list[DroppedHeader] | None = None
    names = limits.names
    for name, value in head.headers:
        line = len(name) + 2 + len(value)
        if line > size:
            raise HeadRejected(494, "client sent too long header line")
        total += line + 2
        kind = names.get(name)
        if kind is None:
            kind = limits.classify(name)
        if kind >= _OTHER:
            if kind == _INVALID:
                if dropped is None:
                    # on the head at once: a rejection later in this loop still logs the lines read before it
                    head.dropped = dropped = []
                dropped.append((name, value, head.host, head.referer))
            continue
        if kind == _HOST:
            hosts += 1
            head.host = value
        elif kind == _CONTENT_LENGTH:
            cl_values.append(value)
        elif kind == _TRANSFER_ENCODING:
            te = value
            te_count += 1
        elif kind == _CONNECTION:
            head.connection = value if head.connection is None else head.connection + ", " + value
        elif kind == _EXPECT:
            if value.strip().lower() == "100-continue":
                head.expect_continue = True
        else:
            attribute = _FIRST_VALUE[kind]
            if getattr(head, attribute) is None:
                setattr(head, attribute, value)
    return total, hosts, te, te_count, cl_values


def _remove_dropped(head: RequestHead, dropped: list[DroppedHeader]) -> None:
    """Take the invalid headers out of ``head.headers`` (their log lines are written by the connection)."""
    if len(dropped) == 1:  # the usual case, in place: a client sends the one stray header it always sends
        name, value, _, _ = dropped[0]
        head.headers.remove((name, value))
    else:  # one pass, not one remove per drop (a head can hold thousands of tiny lines)
        invalid = {d[0] for d in dropped}
        head.headers = [pair for pair in head.headers if pair[0] not in invalid]


def _check_framing(head: RequestHead, limits: HeadLimits, scan: _Scan) -> None:
    """nginx's rules on the head's size, ``Host``, and how the body is framed, in nginx's order."""
    total, hosts, te, te_count, cl_values = scan
    if total > limits.total:
        raise HeadRejected(494, "client sent too large request")
    if hosts > 1:
        raise HeadRejected(400, "client sent duplicate host header")
    if hosts == 0 and head.version == "1.1":
        raise HeadRejected(400, 'client sent HTTP/1.1 request without "Host" header')
    if te is not None:
        if cl_values:
            raise HeadRejected(400, 'client sent "Content-Length" and "Transfer-Encoding" headers at the same time')
        if head.version == "1.0":
            raise HeadRejected(400, 'client sent "Transfer-Encoding" in HTTP/1.0 request')
        if te_count > 1 or te.strip().lower() != "chunked":
            raise HeadRejected(501, f'client sent unknown "Transfer-Encoding": "{te}"')
        head.chunked = True
    if cl_values:
        if len(cl_values) > 1:
            raise HeadRejected(400, 'client sent duplicate header line: "Content-Length"')
        raw = cl_values[0].strip()
        if not raw.isdigit() or not raw.isascii():
            raise HeadRejected(400, f'client sent invalid "Content-Length" header: "{raw}"')
        head.content_length = int(raw)
        if limits.max_body and head.content_length > limits.max_body:
            raise HeadRejected(413, f"client intended to send too large body: {head.content_length} bytes")
