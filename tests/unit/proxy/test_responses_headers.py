"""Generated responses byte for byte, Accept negotiation, the headers policy and the head checks."""

from __future__ import annotations

import pytest

from gateway.proxy.generated import render_generated
from gateway.proxy.headers import DateCache, HeaderPolicy, connection_tokens
from gateway.proxy.request import HeadLimits, HeadRejected, RequestHead, check_head
from gateway.proxy.responses import (
    MIME_HTML,
    MIME_JSON,
    MIME_PLAIN,
    MIME_XML,
    STATUS_LINES,
    error_body,
    error_page_mime,
    response_mime,
)

RID = "0123456789abcdef0123456789abcdef"


def test_templates_are_kongs_bytes() -> None:
    assert error_body(MIME_JSON, "no Route matched with those values", RID) == (
        b'{\n  "message":"no Route matched with those values",\n  "request_id":"' + RID.encode() + b'"\n}'
    )
    assert error_body(MIME_PLAIN, "Bad request", RID) == b"Bad request\nrequest_id: " + RID.encode() + b"\n"
    assert error_body(MIME_HTML, "Bad request", RID) == (
        b'<!doctype html>\n<html>\n  <head>\n    <meta charset="utf-8">\n    <title>Error</title>\n  </head>\n'
        b"  <body>\n    <h1>Error</h1>\n    <p>Bad request.</p>\n    <p>request_id: " + RID.encode() + b"</p>\n"
        b"  </body>\n</html>\n"
    )
    assert error_body(MIME_XML, "Bad request", RID) == (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<error>\n  <message>Bad request</message>\n'
        b"  <requestid>" + RID.encode() + b"</requestid>\n</error>\n"
    )


@pytest.mark.parametrize(
    ("accept", "mime"),
    [
        (None, MIME_JSON),
        ("*/*", MIME_JSON),
        ("text/html", MIME_HTML),
        ("text/*", MIME_PLAIN),
        ("application/xml", MIME_XML),
        ("text/html;q=0.5, application/xml;q=0.9", MIME_XML),
        ("text/html, application/xml", MIME_HTML),  # first wins on equal q
        ("image/png", MIME_JSON),
        ("garbage", MIME_JSON),
    ],
)
def test_response_mime(accept: str | None, mime: str) -> None:
    assert response_mime(accept) == mime


def test_error_page_fallbacks() -> None:
    assert error_page_mime(None, None, "text/plain") == MIME_PLAIN
    assert error_page_mime(None, "application/json", "text/plain") == MIME_JSON
    assert error_page_mime("text/html", "application/json", "text/plain") == MIME_HTML
    assert error_page_mime(None, None, "application/xml") == MIME_XML


def test_status_lines_are_nginx_spelling() -> None:
    assert STATUS_LINES[404] == b"HTTP/1.1 404 Not Found\r\n"
    assert STATUS_LINES[414] == b"HTTP/1.1 414 Request-URI Too Large\r\n"
    assert STATUS_LINES[426] == b"HTTP/1.1 426 Upgrade Required\r\n"


def test_render_generated_order_and_policy() -> None:
    policy = HeaderPolicy(("server_tokens", "latency_tokens", "X-Kong-Request-Id"), ("X-Kong-Request-Id",))
    date = DateCache()
    out = render_generated(
        404, b"{}", MIME_JSON, keep_alive=True, policy=policy, date=date, request_id=RID, latency_ms=3
    )
    assert out == (
        b"HTTP/1.1 404 Not Found\r\n" + date.line() + b"Content-Type: application/json; charset=utf-8\r\n"
        b"Connection: keep-alive\r\nContent-Length: 2\r\nX-Kong-Response-Latency: 3\r\nServer: kong/3.9.1\r\n"
        b"X-Kong-Request-Id: " + RID.encode() + b"\r\n\r\n{}"
    )
    proxied = render_generated(
        502,
        b"x",
        MIME_PLAIN,
        keep_alive=False,
        policy=policy,
        date=date,
        request_id=RID,
        latency_ms=1,
        proxied=True,
        upstream_latency_ms=7,
    )
    assert (
        b"X-Kong-Upstream-Latency: 7\r\nX-Kong-Proxy-Latency: 1\r\nVia: 1.1 kong/3.9.1\r\nServer: kong/3.9.1\r\n"
        in proxied
    )
    off = HeaderPolicy(("off",), ("off",))
    bare = render_generated(404, b"", None, keep_alive=True, policy=off, date=date, request_id=RID, latency_ms=0)
    assert b"Server" not in bare and b"X-Kong" not in bare


def test_header_policy_tokens() -> None:
    p = HeaderPolicy(("Server",), ())
    assert p.server and not p.via and not p.proxy_latency and not p.request_id and not p.request_id_upstream
    p = HeaderPolicy(("latency_tokens", "X-Kong-Upstream-Status"), ("X-Kong-Request-Id",))
    assert p.upstream_latency and p.response_latency and p.upstream_status and p.request_id_upstream
    assert connection_tokens("keep-alive") == []
    assert connection_tokens("Keep-Alive, X-Foo, close") == ["x-foo"]


LIMITS = HeadLimits(8192, 4, 0)


def _head(headers: list[tuple[str, str]], version: str = "1.1", target: str = "/") -> RequestHead:
    return RequestHead("POST", target, version, headers, True)


@pytest.mark.parametrize(
    ("headers", "version", "status"),
    [
        ([("Host", "a"), ("Content-Length", "1"), ("Transfer-Encoding", "chunked")], "1.1", 400),
        ([("Host", "a"), ("Content-Length", "1"), ("Content-Length", "1")], "1.1", 400),
        ([("Host", "a"), ("Content-Length", "1e3")], "1.1", 400),
        ([("Host", "a"), ("Transfer-Encoding", "identity")], "1.1", 501),
        ([("Transfer-Encoding", "chunked")], "1.0", 400),
        ([("Host", "a"), ("Host", "b")], "1.1", 400),
        ([], "1.1", 400),
        ([("Host", "a"), ("X", "v" * 9000)], "1.1", 494),
    ],
)
def test_check_head_rejections(headers: list[tuple[str, str]], version: str, status: int) -> None:
    with pytest.raises(HeadRejected) as info:
        check_head(_head(headers, version), LIMITS)
    assert info.value.status == status


def test_check_head_limits_and_framing() -> None:
    with pytest.raises(HeadRejected) as info:
        check_head(_head([("Host", "a")], target="/" + "x" * 9000), LIMITS)
    assert info.value.status == 414
    with pytest.raises(HeadRejected) as info:
        check_head(_head([("Host", "a"), ("Content-Length", "11")]), HeadLimits(8192, 4, 10))
    assert info.value.status == 413
    head = _head([("Host", "a"), ("Transfer-Encoding", "Chunked"), ("Expect", "100-continue")])
    check_head(head, LIMITS)
    assert head.chunked and head.expect_continue and head.has_body and head.host == "a"


def test_check_head_records_first_values_of_the_proxied_headers() -> None:
    head = _head(
        [
            ("Host", "a"),
            ("te", "trailers"),
            ("TE", "gzip"),
            ("Via", "1.0 p"),
            ("X-Forwarded-For", "1.2.3.4"),
            ("x-forwarded-for", "5.6.7.8"),
            ("Referer", "r"),
            ("User-Agent", "u"),
            ("User-Agent", "v"),
        ]
    )
    check_head(head, LIMITS)
    assert (head.te, head.via, head.x_forwarded_for, head.referer, head.user_agent) == (
        "trailers",
        "1.0 p",
        "1.2.3.4",
        "r",
        "u",
    )
    assert head.te == head.get("te") and head.x_forwarded_for == head.get("x-forwarded-for")


@pytest.mark.parametrize(
    ("headers", "tails"),
    [
        (
            ("server_tokens", "latency_tokens", "X-Kong-Request-Id"),
            (
                b"X-Kong-Upstream-Latency: 1\r\nX-Kong-Proxy-Latency: 2\r\nVia: 1.1 kong/3.9.1\r\n"
                b"Server: kong/3.9.1\r\nX-Kong-Request-Id: rid\r\n\r\n",
                b"X-Kong-Upstream-Latency: 1\r\nX-Kong-Proxy-Latency: 2\r\nVia: 1.1 kong/3.9.1\r\n"
                b"X-Kong-Request-Id: rid\r\n\r\n",
                b"X-Kong-Upstream-Latency: 1\r\nX-Kong-Proxy-Latency: 2\r\nServer: kong/3.9.1\r\n"
                b"X-Kong-Request-Id: rid\r\n\r\n",
                b"X-Kong-Upstream-Latency: 1\r\nX-Kong-Proxy-Latency: 2\r\nX-Kong-Request-Id: rid\r\n\r\n",
            ),
        ),
        (("X-Kong-Upstream-Status",), (b"X-Kong-Upstream-Status: 204\r\n\r\n",) * 4),
        (("X-Kong-Request-Id",), (b"X-Kong-Request-Id: rid\r\n\r\n",) * 4),
        (("off",), (b"\r\n",) * 4),
        (("Via",), (b"Via: 1.1 kong/3.9.1\r\n\r\n", b"Via: 1.1 kong/3.9.1\r\n\r\n", b"\r\n", b"\r\n")),
    ],
)
def test_response_tail_templates(headers: tuple[str, ...], tails: tuple[bytes, ...]) -> None:
    policy = HeaderPolicy(headers, ())
    values = (204, 1, 2, b"rid")
    for index, expected in enumerate(tails):
        tail = policy.response_tails[index]  # 2 * (upstream sent Via) + (upstream sent Server)
        if policy.tail_values is not None:
            tail = tail % policy.tail_values(values)
        assert tail == expected
