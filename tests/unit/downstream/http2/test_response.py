"""The exchange's HTTP/1.1 response bytes -> one stream's HEADERS/DATA (``http2.response``)."""

from __future__ import annotations

from gateway.downstream.http2.response import Headers, ResponseTranslator


class Sink:
    def __init__(self, head_only: bool = False) -> None:
        self.heads: list[tuple[Headers, bool, bool]] = []
        self.data: list[bytes] = []
        self.ended = 0
        self.t = ResponseTranslator(self.on_head, self.data.append, self.on_end, head_only)

    def on_head(self, headers: Headers, informational: bool, end: bool) -> None:
        self.heads.append((headers, informational, end))

    def on_end(self) -> None:
        self.ended += 1


def test_head_loses_hop_by_hop_headers_and_gets_status_first() -> None:
    s = Sink()
    s.t.feed(
        b"HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n"
        b"Via: 1.1 kong/3.9.1\r\nContent-Length: 5\r\n\r\nhel"
    )
    s.t.feed(b"lo")
    headers, informational, end = s.heads[0]
    assert headers == [
        (b":status", b"201"),
        (b"content-type", b"text/plain"),
        (b"via", b"1.1 kong/3.9.1"),
        (b"content-length", b"5"),
    ]
    assert not informational and not end
    assert b"".join(s.data) == b"hello"
    assert s.ended == 1
    s.t.feed(b"garbage after the end")  # dropped
    assert s.ended == 1 and b"".join(s.data) == b"hello"


def test_chunked_body_is_unframed() -> None:
    s = Sink()
    s.t.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
    s.t.feed(b"1\r\n!\r\n0\r\n\r\n")
    assert (b"transfer-encoding", b"chunked") not in s.heads[0][0]
    assert b"".join(s.data) == b"hello!"
    assert s.ended == 1


def test_close_delimited_body_does_not_end_by_itself() -> None:
    s = Sink()
    s.t.feed(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nsome")
    s.t.feed(b" more")
    assert b"".join(s.data) == b"some more"
    assert s.ended == 0  # the exchange's end ends it


def test_interim_100_then_final() -> None:
    s = Sink()
    s.t.feed(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nServer: x\r\n\r\n")
    assert [(h[0], i, e) for h, i, e in s.heads] == [
        ((b":status", b"100"), True, False),
        ((b":status", b"204"), False, False),
    ]
    assert s.ended == 1


def test_head_request_ends_with_the_head() -> None:
    s = Sink(head_only=True)
    s.t.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
    assert s.heads[0][2] is True
    assert s.t.done and s.ended == 0 and s.data == []
