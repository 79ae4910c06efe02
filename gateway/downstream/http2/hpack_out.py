"""Our HPACK encoder for response headers: literals without indexing, no dynamic table, no Huffman coding.

Why not ``hpack.Encoder`` (what ``h2`` uses by default): measured here it costs ~100 us per response head (Huffman
coding and a linear search of its tables for each header, in Python), more than the rest of a proxied request's
Python. HPACK lets an encoder choose never to index (RFC 7541 6.2.2), and a proxy's responses repeat little that
indexing would save (each carries its own request id, date and latencies). So every field is one literal: an indexed
name from the static table when it has one, else the name as a string, then the value, with no dynamic table at all.

Consequences: the client's ``SETTINGS_HEADER_TABLE_SIZE`` cannot make us keep anything (the oversized-table shape
disappears for our side); header blocks are a little larger than with Huffman coding; the cost is a few dict lookups
and one ``join`` per head. ``H2Connection`` installs it as the ``h2`` connection's ``encoder``: ``h2`` only calls
``encode`` and sets ``header_table_size``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

__all__ = ["LiteralEncoder"]

#: RFC 7541 Appendix A: the static table's names (first index of each), for "literal with indexed name"
_STATIC_NAMES: Final = [
    ":authority",
    ":method",
    ":method",
    ":path",
    ":path",
    ":scheme",
    ":scheme",
    ":status",
    ":status",
    ":status",
    ":status",
    ":status",
    ":status",
    ":status",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "accept",
    "access-control-allow-origin",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-range",
    "content-type",
    "cookie",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "link",
    "location",
    "max-forwards",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "refresh",
    "retry-after",
    "server",
    "set-cookie",
    "strict-transport-security",
    "transfer-encoding",
    "user-agent",
    "vary",
    "via",
    "www-authenticate",
]
_NAME_INDEX: Final = {name.encode(): index for index, name in reversed(list(enumerate(_STATIC_NAMES, start=1)))}
#: ``:status`` values with a full static entry (index 8-14): one byte each
_STATUS_INDEXED: Final = {b"200": 8, b"204": 9, b"206": 10, b"304": 11, b"400": 12, b"404": 13, b"500": 14}


def _integer(value: int, prefix_bits: int, first: int) -> bytes:
    """RFC 7541 5.1: ``value`` with an N-bit prefix, ``first`` holding the representation's pattern bits."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _string(data: bytes) -> bytes:
    """RFC 7541 5.2 without Huffman coding: the length (7-bit prefix, H=0) and the octets."""
    n = len(data)
    return (bytes((n,)) if n < 127 else _integer(n, 7, 0)) + data


#: precomputed "literal without indexing, indexed name" prefixes (4-bit prefix, pattern 0000)
_NAME_PREFIX: Final = {name: _integer(index, 4, 0x00) for name, index in _NAME_INDEX.items()}


class LiteralEncoder:
    """The ``encoder`` of an ``h2`` connection (see the module docstring)."""

    __slots__ = ("_table_size",)

    def __init__(self) -> None:
        self._table_size = 4096

    @property
    def header_table_size(self) -> int:
        return self._table_size

    @header_table_size.setter
    def header_table_size(self, value: int) -> None:
        self._table_size = value  # a maximum we never use: no dynamic table, no size update to send

    def encode(self, headers: Iterable[tuple[bytes, bytes]], huffman: bool = True) -> bytes:
        """One header block; names must be lowercase bytes (``http2.response`` makes them so)."""
        parts: list[bytes] = []
        append = parts.append
        prefix = _NAME_PREFIX.get
        for name, value in headers:
            if name == b":status":
                index = _STATUS_INDEXED.get(value)
                if index is not None:
                    append(bytes((0x80 | index,)))
                    continue
            head = prefix(name)
            if head is None:
                append(b"\x00" + _string(name))
            else:
                append(head)
            append(_string(value))
        return b"".join(parts)
