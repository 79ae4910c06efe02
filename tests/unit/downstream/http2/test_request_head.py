"""An h2 stream's header list -> the HTTP/1-shaped head the exchange reads (``http2.request.request_head``)."""

from __future__ import annotations

from gateway.downstream.http2.request import request_head
from gateway.downstream.request import HeadLimits, check_head


def test_pseudo_headers_make_the_request_line_and_host() -> None:
    head = request_head(
        [
            (b":method", b"POST"),
            (b":scheme", b"https"),
            (b":authority", b"example.test:8443"),
            (b":path", b"/a?b=c"),
            (b"content-length", b"3"),
            (b"cookie", b"a=1"),
            (b"user-agent", b"t"),
            (b"cookie", b"b=2"),
        ]
    )
    check_head(head, HeadLimits(8192, 4, 0))
    assert head.request_line == "POST /a?b=c HTTP/2.0"
    assert head.host == "example.test:8443"
    assert head.headers[0] == ("host", "example.test:8443")
    assert ("cookie", "a=1; b=2") in head.headers  # nginx joins the crumbs
    assert head.content_length == 3 and head.user_agent == "t"
    assert head.keep_alive


def test_a_host_header_wins_over_authority() -> None:
    head = request_head([(b":method", b"GET"), (b":authority", b"a.test"), (b":path", b"/"), (b"host", b"b.test")])
    check_head(head, HeadLimits(8192, 4, 0))
    assert head.host == "b.test"
    assert [v for n, v in head.headers if n == "host"] == ["b.test"]
