"""The response head sent downstream, as pure functions: which upstream headers pass, and how the body is framed.

Kong's header filter (``kong/runloop/handler.lua``) plus nginx's proxy module: hop-by-hop headers and those the
upstream's ``Connection`` names are dropped; ``Content-Type``, ``Content-Length`` and ``Date`` are re-emitted in
nginx's order; Kong's ``Via`` is appended to the upstream's first ``Via`` (in its place); ``Trailer`` passes only to
a client that sent ``TE: trailers``. The framing: ``Content-Length`` when the upstream gave one, else chunked for an
HTTP/1.1 client, else a body delimited by the close (HTTP/1.0). One dict lookup per upstream header (the hot path).
"""

from __future__ import annotations

from typing import Final

from gateway.downstream.headers import RESPONSE_HOP_BY_HOP, VIA_VALUE, connection_tokens
from gateway.proxy.request_head import lists_trailers

__all__ = ["Framing", "UpstreamHeaders", "framing", "scan_headers", "status_line"]

_VIA_BYTES: Final = VIA_VALUE.encode()
_HOP_BY_HOP_BYTES: Final = frozenset(name.encode() for name in RESPONSE_HOP_BY_HOP)
_OTHER: Final = 0
_SERVER: Final = 1
_DATE: Final = 2
_CONTENT_TYPE: Final = 3
_CONTENT_LENGTH: Final = 4
_CONNECTION: Final = 5
_VIA: Final = 6
_TRAILER: Final = 7
_HOP_BY_HOP: Final = 8
#: upstream response header names (lowercase) that are not copied as they are (any other name is ``_OTHER``)
_KINDS: Final[dict[bytes, int]] = {
    b"server": _SERVER,
    b"date": _DATE,
    b"content-type": _CONTENT_TYPE,
    b"content-length": _CONTENT_LENGTH,
    b"connection": _CONNECTION,
    b"via": _VIA,
    b"trailer": _TRAILER,
    **{name: _HOP_BY_HOP for name in _HOP_BY_HOP_BYTES - {b"connection", b"content-length"}},
}
_USUAL_NAMES: Final = (
    (b"Date", _DATE),
    (b"Server", _SERVER),
    (b"Connection", _CONNECTION),
    (b"Content-Type", _CONTENT_TYPE),
    (b"Content-Length", _CONTENT_LENGTH),
)
_VIA_SLOT: Final = b"\x00via"  # placeholder for the Via line in the upstream's header list
#: the kind of each header name as the upstream spelled it: an upstream sends the same few names in every response,
#: so a lookup here replaces a ``lower()`` and a lookup per header; bounded like ``request.HeadLimits.names``
_SEEN: Final[dict[bytes, int]] = {}
#: by name length, the one header of that length an upstream sends in nearly every response, spelled as nginx (and
#: most servers) spell it, with its kind: one comparison instead of a dict lookup, which hashes the parser's new bytes
#: object each time (~380 instructions a header); any other name or spelling goes to ``_SEEN``
_USUAL: Final[tuple[tuple[bytes, int] | None, ...]] = tuple(
    next(((name, kind) for name, kind in _USUAL_NAMES if len(name) == size), None)
    for size in range(max(len(name) for name, _ in _USUAL_NAMES) + 1)
)
_SEEN_NAME_LENGTH: Final = 64
_SEEN_NAMES: Final = 1024
_KEPT_REASON_LENGTH: Final = 64  # a longer reason phrase gets its status line made each time, not kept
#: the status line per status code, with the reason phrase it was made with: an upstream gives one status the same
#: reason every time, so the line is made once (a ``%`` format per response was the head's largest single cost)
_STATUS_LINES: Final[dict[int, tuple[bytes, bytes]]] = {}


#: what passes of the upstream's headers: (lines in their order, ``Via`` already rewritten; Content-Type;
#: Content-Length; has Via; has Server; has Date). Plain tuples, not NamedTuples: built per response, where a
#: NamedTuple costs ten times more (the hot path)
UpstreamHeaders = tuple[list[bytes], bytes | None, bytes | None, bool, bool, bool]
#: the body's framing: (the framing line, whether we chunk it, whether the connection can stay open for it); a body
#: with a length has no line here: the caller writes ``Content-Length: <the upstream's value>`` as pieces of the head
#: it joins anyway (two objects fewer to build and free per response than a concatenated line)
Framing = tuple[bytes, bool, bool]


def scan_headers(headers: list[tuple[bytes, bytes]], te: str | None, append_via: bool) -> UpstreamHeaders:
    """Sort the upstream's headers (see the module docstring); ``append_via``: the ``headers`` setting has ``Via``."""
    content_type: bytes | None = None
    content_length: bytes | None = None
    via: bytes | None = None
    via_at = -1  # where the first upstream Via was: Kong's Via goes there
    has_server = has_date = False
    drop: set[bytes] | None = None
    rest: list[bytes] = []
    seen = _SEEN
    usual = _USUAL
    for name, value in headers:
        size = len(name)
        known = usual[size] if size < len(usual) else None
        if known is not None and name == known[0]:
            kind = known[1]
        else:
            found = seen.get(name)
            kind = found if found is not None else _kind(name)
        if kind == _OTHER:
            rest.append(b"%b: %b\r\n" % (name, value))  # one bytes object (a concatenation makes three)
        elif kind == _CONTENT_LENGTH:
            content_length = value
        elif kind == _CONTENT_TYPE:
            content_type = value
        elif kind == _DATE:
            has_date = True
            rest.append(b"%b: %b\r\n" % (name, value))
        elif kind == _SERVER:
            has_server = True
            rest.append(b"%b: %b\r\n" % (name, value))
        elif kind == _CONNECTION:
            if value != b"keep-alive" and value != b"close":
                drop = _named_by_connection(value, drop)
        elif kind == _VIA:
            via = value
            if via_at == -1:
                via_at = len(rest)
                rest.append(_VIA_SLOT)  # replaced below, once the line is known
        elif kind == _TRAILER and te is not None and lists_trailers(te):
            rest.append(b"%b: %b\r\n" % (name, value))
        # else: a hop-by-hop header, or a Trailer the client did not ask for: dropped
    if drop:
        rest = [line for line in rest if line.split(b":", 1)[0].lower() not in drop]
        has_date = has_date and b"date" not in drop
    if via is not None:
        via_at = rest.index(_VIA_SLOT) if drop else via_at
        rest[via_at] = b"Via: " + via + b", " + _VIA_BYTES + b"\r\n" if append_via else b"Via: " + via + b"\r\n"
    return rest, content_type, content_length, via is not None, has_server, has_date


def status_line(status: int, reason: bytes) -> bytes:
    """The status line, ``HTTP/1.1 <status> <reason>`` and CRLF (the client always gets HTTP/1.1, as from nginx),
    made once per status for the reason it was first made with (any other reason builds its own line)."""
    known = _STATUS_LINES.get(status)
    if known is not None and known[0] == reason:
        return known[1]
    line = b"HTTP/1.1 %d %b\r\n" % (status, reason)
    if known is None and len(reason) <= _KEPT_REASON_LENGTH:  # status codes are 3 digits: at most 900 entries
        _STATUS_LINES[status] = (reason, line)
    return line


def _kind(name: bytes) -> int:
    """The kind of header ``name``, remembered in ``_SEEN``."""
    kind = _KINDS.get(name.lower(), _OTHER)
    if len(name) <= _SEEN_NAME_LENGTH:
        if len(_SEEN) >= _SEEN_NAMES:
            _SEEN.clear()
        _SEEN[name] = kind
    return kind


def _named_by_connection(value: bytes, drop: set[bytes] | None) -> set[bytes] | None:
    """Add the header names an upstream ``Connection`` value lists to ``drop``."""
    tokens = connection_tokens(value.decode("latin-1"))
    if not tokens:
        return drop
    return (drop or set()) | {t.encode() for t in tokens}


def framing(method: str, status: int, version: str, content_length: bytes | None, keep_alive: bool) -> Framing:
    """How the response body goes to the client (see the module docstring)."""
    if method == "HEAD" or status == 204 or status == 304 or content_length is not None:
        return b"", False, keep_alive  # the length, if any, is the caller's to write (see ``Framing``)
    if version == "1.1":
        return b"Transfer-Encoding: chunked\r\n", True, keep_alive
    return b"", False, False  # close-delimited body for an HTTP/1.0 client
