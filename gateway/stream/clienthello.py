"""Reading the SNI of a TLS ClientHello without terminating TLS: what nginx's ``ssl_preread`` does for Kong.

Kong's ``ssl`` stream listeners read the client's first flight before anything else (``ssl_preread on``), route on
the server name it carries, and only then either terminate TLS (``tls`` routes) or forward the bytes untouched
(``tls_passthrough`` routes). ``ClientHelloReader`` is that step, sans-I/O: ``feed`` it what the socket delivers, in
pieces of any size (a ClientHello split into 1-byte TCP segments, or over several TLS records, is read the same as
one arriving whole), and it answers once with a ``Preread``. Every byte fed is kept (``buffered``): the caller
forwards them to the upstream (passthrough) or hands them to OpenSSL (termination).

Outcomes (nginx's ``ngx_stream_ssl_preread_handler`` decisions, with the reasons it logs at debug level):

- ``HELLO``: a complete, well-formed ClientHello; ``sni`` is its ``server_name`` (host_name), or ``""`` when it has
  none (nginx's ``$ssl_preread_server_name`` is then empty, and Kong routes it as ``tls`` with an empty SNI). An
  SSLv2-format hello is a ``HELLO`` without SNI, as in nginx.
- ``NOT_TLS``: the first byte cannot start a TLS handshake record (nginx: "not a handshake", preread declined): the
  connection is routed as plain ``tcp``, without SNI.
- ``MALFORMED``: handshake records that do not make a well-formed ClientHello (nginx declines them silently and
  routes without SNI; here the connection is closed with a log line, see ``gateway.stream.session``).
- ``TOO_LARGE``: ``limit`` bytes (nginx's ``preread_buffer_size``, 16k) arrived without a complete ClientHello
  (nginx: ``preread buffer full``).

The parser checks every length against its container, so no input can make it read out of bounds, loop, or
raise anything but its own verdict (``tests/unit/stream/test_clienthello.py`` fuzzes it).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

__all__ = ["PREREAD_BUFFER_SIZE", "ClientHelloReader", "Outcome", "Preread", "parse_client_hello"]

#: nginx's ``preread_buffer_size`` default: the ClientHello must arrive within this many bytes
PREREAD_BUFFER_SIZE: Final = 16384

_HANDSHAKE: Final = 0x16
_CLIENT_HELLO: Final = 1
_MAX_RECORD: Final = 16384 + 2048  # TLSCiphertext bound; a plaintext record is smaller still
_EXT_SERVER_NAME: Final = 0
_NAME_TYPE_HOST: Final = 0


class Outcome(enum.Enum):
    """What the first bytes of a connection turned out to be."""

    MORE = "more"
    HELLO = "hello"
    NOT_TLS = "not_tls"
    MALFORMED = "malformed"
    TOO_LARGE = "too_large"


@dataclass(frozen=True, slots=True)
class Preread:
    """A verdict: ``sni`` for ``HELLO`` (``""`` without a server_name), ``reason`` for the failures."""

    outcome: Outcome
    sni: str | None = None
    reason: str = ""


_MORE: Final = Preread(Outcome.MORE)


class _Malformed(Exception):
    """Raised inside the parser only; becomes ``Outcome.MALFORMED`` with this reason."""


class _Reader:
    """Bounds-checked reads over one TLS structure."""

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes | memoryview) -> None:
        self._data = memoryview(data)
        self._pos = 0

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    def take(self, size: int, what: str) -> memoryview:
        if size > self.remaining:
            raise _Malformed(f"truncated {what}")
        start = self._pos
        self._pos += size
        return self._data[start : self._pos]

    def number(self, size: int, what: str) -> int:
        return int.from_bytes(self.take(size, what), "big")

    def vector(self, length_size: int, what: str) -> memoryview:
        return self.take(self.number(length_size, what), what)


def parse_client_hello(body: bytes | memoryview) -> str:
    """The server name of a ClientHello body (after its 4-byte handshake header), ``""`` without one.

    Raises:
        _Malformed: with nginx's reason where it has one.
    """
    r = _Reader(body)
    r.take(2, "client_version")
    r.take(32, "random")
    if len(r.vector(1, "session_id")) > 32:
        raise _Malformed("session_id longer than 32 bytes")
    suites = r.vector(2, "cipher_suites")
    if not suites or len(suites) % 2:
        raise _Malformed("bad cipher_suites length")
    if not r.vector(1, "compression_methods"):
        raise _Malformed("no compression method")
    if r.remaining == 0:
        return ""  # no extensions at all
    extensions = _Reader(r.vector(2, "extensions"))
    if r.remaining:
        raise _Malformed("bytes after the extensions")
    seen: set[int] = set()
    sni = ""
    while extensions.remaining:
        kind = extensions.number(2, "extension type")
        data = extensions.vector(2, "extension")
        if kind in seen:
            raise _Malformed(f"duplicate extension {kind}")
        seen.add(kind)
        if kind == _EXT_SERVER_NAME:
            sni = _server_name(data)
    return sni


def _server_name(data: memoryview) -> str:
    """The first host_name of a server_name extension (RFC 6066 3; OpenSSL reads only that one too)."""
    outer = _Reader(data)
    names = _Reader(outer.vector(2, "server_name list"))
    if outer.remaining or not names.remaining:
        raise _Malformed("SNI format error")
    if names.number(1, "SNI name type") != _NAME_TYPE_HOST:
        raise _Malformed("SNI hostname type is not DNS")
    name = bytes(names.vector(2, "SNI host_name"))
    if not name or len(name) > 255 or b"\0" in name:
        raise _Malformed("SNI format error")
    # latin-1 maps bytes 1:1: the name compares exactly as the client sent it (as the SNI callback decodes it)
    return name.decode("latin-1")


class ClientHelloReader:
    """Accumulates a connection's first bytes until they make a verdict (see the module docstring)."""

    __slots__ = ("_buffer", "_handshake", "_pos", "limit", "result")

    def __init__(self, limit: int = PREREAD_BUFFER_SIZE) -> None:
        self.limit = limit
        self._buffer = bytearray()
        self._handshake = bytearray()  # the handshake message, reassembled from the records' fragments
        self._pos = 0  # start of the first record not yet consumed
        #: the verdict, once there is one (``feed`` returns it again without reading more)
        self.result: Preread | None = None

    @property
    def buffered(self) -> bytes:
        """Every byte fed so far, verdict or not: what the client sent, to forward or to hand to OpenSSL."""
        return bytes(self._buffer)

    def feed(self, data: bytes) -> Preread:
        """Add ``data``; the verdict, or ``Outcome.MORE`` while the ClientHello is incomplete."""
        if self.result is not None:
            self._buffer += data
            return self.result
        self._buffer += data
        try:
            verdict = self._scan()
        except _Malformed as exc:
            verdict = Preread(Outcome.MALFORMED, reason=str(exc))
        if verdict is _MORE and len(self._buffer) >= self.limit:
            verdict = Preread(Outcome.TOO_LARGE, reason="preread buffer full")
        if verdict is not _MORE:
            self.result = verdict
        return verdict

    def _scan(self) -> Preread:
        buf = self._buffer
        if self._pos == 0 and buf and buf[0] != _HANDSHAKE and not buf[0] & 0x80:
            return Preread(Outcome.NOT_TLS, reason="not a handshake")  # plain text: no need to wait for 5 bytes
        while len(buf) - self._pos >= 5:
            p = self._pos
            first = p == 0
            if first and buf[0] & 0x80 and buf[2] == 1 and buf[3] in (0, 3):
                return Preread(Outcome.HELLO, sni="")  # SSLv2-format ClientHello: no extensions, no SNI
            if buf[p] != _HANDSHAKE or buf[p + 1] != 3:
                if first:
                    return Preread(Outcome.NOT_TLS, reason="not a handshake")
                raise _Malformed("a record other than handshake inside the ClientHello")
            length = (buf[p + 3] << 8) | buf[p + 4]
            if length == 0 or length > _MAX_RECORD:
                raise _Malformed(f"bad record length {length}")
            if len(buf) - p < 5 + length:
                break
            self._handshake += buf[p + 5 : p + 5 + length]
            self._pos = p + 5 + length
            verdict = self._message()
            if verdict is not _MORE:
                return verdict
        return _MORE

    def _message(self) -> Preread:
        """The reassembled handshake message so far: a verdict once it holds a whole ClientHello."""
        hs = self._handshake
        if len(hs) < 4:
            return _MORE
        if hs[0] != _CLIENT_HELLO:
            raise _Malformed("not a client hello")
        size = (hs[1] << 16) | (hs[2] << 8) | hs[3]
        if size > self.limit:
            raise _Malformed(f"ClientHello of {size} bytes")
        if len(hs) < 4 + size:
            return _MORE
        return Preread(Outcome.HELLO, sni=parse_client_hello(bytes(hs[4 : 4 + size])))
