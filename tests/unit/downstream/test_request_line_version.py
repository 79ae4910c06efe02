"""The request's HTTP version as the downstream connection reads it: from the request line's bytes where the message
began at the start of a read (``http1.version_at``), from httptools otherwise; either way what llhttp parsed.

Each case feeds raw bytes to the real ``HttpToolsProtocol`` in the given reads and compares the versions of the
heads it hands up with the versions a bare httptools parser reports for the same bytes.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import httptools
import pytest

from benchmarks.inprocess import MemoryTransport
from gateway.downstream.exchange import DownstreamExchange
from gateway.downstream.http1 import HttpToolsProtocol, version_at
from gateway.downstream.request import RequestHead
from gateway.observability.accesslog import AccessLog
from gateway.observability.errorlog import ErrorLog
from gateway.proxy.state import ProxyState
from gateway.runtime.snapshot import build_snapshot
from gateway.settings import Listener, load_settings


class _Held(DownstreamExchange):
    """An exchange that never answers: the connection hands up each head and queues the pipelined ones."""

    def __init__(self, head: RequestHead) -> None:
        self.head = head
        self.keep_alive = True

    @property
    def response_started(self) -> bool:
        return False

    def begin(self) -> None:
        pass

    def feed_body(self, data: bytes) -> None:
        pass

    def body_complete(self) -> None:
        pass


async def _versions_seen(tmp_path: Path, reads: list[bytes]) -> list[str]:
    settings = load_settings(
        env={}, overrides={"prefix": str(tmp_path), "proxy_listen": "127.0.0.1:8000", "admin_listen": "off"}
    )
    state = ProxyState(settings, ErrorLog(None, stream=io.StringIO()), AccessLog(None), build_snapshot({}, settings))
    heads: list[RequestHead] = []

    def record(conn: Any, head: RequestHead) -> DownstreamExchange:
        heads.append(head)
        return _Held(head)

    state.exchange_type = record
    conn = HttpToolsProtocol(state, Listener("127.0.0.1", 8000))
    conn.connection_made(MemoryTransport({"peername": ("127.0.0.1", 40000)}))
    for data in reads:
        conn.data_received(data)
    state.close()
    return [head.version for head in heads]


def _versions_of_httptools(data: bytes) -> list[str]:
    versions: list[str] = []

    class Callbacks:
        def on_headers_complete(self) -> None:
            versions.append(parser.get_http_version())

    parser = httptools.HttpRequestParser(Callbacks())
    parser.feed_data(data)
    return versions


GET_11 = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
GET_10 = b"GET /a HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\n\r\n"
POST_10 = b"POST /p HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 18\r\n\r\nGET / HTTP/1.1\r\n\r\n"
#: a request line that does not begin its read: nine CR/LF bytes llhttp skips, then a target whose own bytes hold
#: ``HTTP/1.1`` exactly where the version would be if the line began at the read's first byte
SHIFTED = b"\r\n\r\n\r\n\r\n\r" + b"GET /XHTTP/1.1 HTTP/1.0\r\nHost: h\r\n\r\n"
#: a read that begins inside a body and holds the next request: the body's bytes sit where that request's version
#: would be if its line began the read (a space after three bytes, ``HTTP/1.1`` at 3 + len("/a") + 2)
BODY_THEN_10 = [b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 15\r\n\r\n", b"abc 123HTTP/1.1" + GET_10]
#: two spaces before the version (llhttp allows it): the bytes after one space are not the version
TWO_SPACES = b"GET /a  HTTP/1.0\r\nHost: h\r\n\r\n"

CASES = {
    "one read, 1.1": [GET_11],
    "one read, 1.0": [GET_10],
    "pipelined 1.1 then 1.0 in one read": [GET_11 + GET_10],
    "pipelined 1.0 then 1.1 in one read": [GET_10 + GET_11],
    "byte by byte": [bytes([b]) for b in GET_10 + GET_11],
    "the line split in the target": [b"GET /a", b"bc HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + GET_11],
    "the line whole, the head split": [b"GET /a HTTP/1.0\r\nConnection: keep-al", b"ive\r\n\r\n", GET_11],
    "a body whose bytes look like a request line": [POST_10, GET_10],
    "the next request after a body, in the body's read": [POST_10 + GET_10],
    "a read that begins in a body and holds the next request": BODY_THEN_10,
    "leading CR/LF": [b"\r\n" + GET_10, b"\r\n\r\n" + GET_11],
    "leading CR/LF and a target that looks like a version": [SHIFTED],
    "two spaces before the version": [TWO_SPACES],
}


@pytest.mark.parametrize("reads", CASES.values(), ids=CASES.keys())
async def test_the_version_is_what_llhttp_parsed(tmp_path: Path, reads: list[bytes]) -> None:
    expected = _versions_of_httptools(b"".join(reads))
    assert expected  # the case's bytes are requests llhttp accepts
    assert await _versions_seen(tmp_path, reads) == expected


def test_the_shifted_line_would_fool_a_reader_that_does_not_check_where_the_line_begins() -> None:
    # what makes SHIFTED a real case: the byte at the version's place, counted from the read's start, say HTTP/1.1
    at = len(b"GET") + len(b"/XHTTP/1.1") + 2
    assert SHIFTED[at : at + 8] == b"HTTP/1.1"
    assert _versions_of_httptools(SHIFTED) == ["1.0"]
    assert version_at(SHIFTED, b"GET", b"/XHTTP/1.1") is None


def test_version_at_reads_only_the_two_versions_it_knows() -> None:
    assert version_at(GET_11, b"GET", b"/a") == "1.1"
    assert version_at(GET_10, b"GET", b"/a") == "1.0"
    assert version_at(b"GET /a HTTP/0.9\r\n\r\n", b"GET", b"/a") is None
    assert version_at(b"GET /a HTTP/1.", b"GET", b"/a") is None  # a read that ends inside the line
    assert version_at(b"GET", b"GET", b"/a") is None
    assert version_at(TWO_SPACES, b"GET", b"/a") is None
