"""Generated responses byte for byte, Accept negotiation, the headers policy and the head checks."""

from __future__ import annotations

import pytest

from gateway.downstream.generated import render_generated
from gateway.downstream.headers import DateCache, HeaderPolicy, connection_tokens
from gateway.downstream.request import HeadLimits, HeadRejected, RequestHead, check_head
from gateway.downstream.responses import (
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


def test_check_head_drops_invalid_header_names_and_records_their_context() -> None:
    head = _head(
        [
            ("X.Early", "1"),
            ("Host", "a"),
            ("X_Consumer_Username", "admin"),
            ("X-Consumer-Username", "real"),
            ("Referer", "r"),
            ("x_consumer_username", "again"),
            ("Accept", "*/*"),
        ]
    )
    check_head(head, LIMITS)
    assert head.headers == [("Host", "a"), ("X-Consumer-Username", "real"), ("Referer", "r"), ("Accept", "*/*")]
    # what nginx's info line shows: the Host / Referer read before the dropped line, not after
    assert head.dropped == [
        ("X.Early", "1", None, None),
        ("X_Consumer_Username", "admin", "a", None),
        ("x_consumer_username", "again", "a", "r"),
    ]
    assert head.get("x_consumer_username") is None and head.host == "a" and head.accept == "*/*"


@pytest.mark.parametrize(
    "name", ["X_Foo", "_", "X.Foo", "X!", "X#", "X$", "X%", "X&", "X'", "X*", "X+", "X^", "X`", "X|", "X~"]
)
def test_names_nginx_treats_as_invalid(name: str) -> None:
    head = _head([("Host", "a"), (name, "v")])
    check_head(head, LIMITS)
    assert head.headers == [("Host", "a")] and head.dropped == [(name, "v", "a", None)]


def test_underscores_in_headers_and_ignore_invalid_headers_off_keep_them() -> None:
    underscores = HeadLimits(8192, 4, 0, underscores_in_headers=True)
    head = _head([("Host", "a"), ("X_Foo", "1"), ("X.Foo", "2"), ("Content_Length", "5")])
    check_head(head, underscores)
    # an underscore name is just another header then: Content_Length is not Content-Length
    assert head.headers == [("Host", "a"), ("X_Foo", "1"), ("Content_Length", "5")]
    assert head.dropped == [("X.Foo", "2", "a", None)] and head.content_length is None
    keep = HeadLimits(8192, 4, 0, ignore_invalid_headers=False)
    head = _head([("Host", "a"), ("X_Foo", "1"), ("X.Foo", "2")])
    check_head(head, keep)
    assert head.headers == [("Host", "a"), ("X_Foo", "1"), ("X.Foo", "2")] and head.dropped is None


def test_valid_names_are_kept_and_the_name_cache_is_bounded() -> None:
    limits = HeadLimits(8192, 4, 0)
    head = _head([("Host", "a"), ("x-9-Y", "1"), ("-", "2"), ("X-" + "L" * 100, "3")])
    check_head(head, limits)
    assert head.dropped is None and len(head.headers) == 4
    assert limits.names.keys() == {"Host", "x-9-Y", "-"}  # a long name is classified, not kept
    for batch in range(3):
        check_head(_head([("Host", "a")] + [(f"X-{batch}-{i}", "v") for i in range(600)]), limits)
        assert len(limits.names) <= 1024
    head = _head([("Host", "a"), ("X_Foo", "1"), ("X-" + "_" * 100, "2")])
    check_head(head, limits)  # still right after the cache was emptied
    assert head.headers == [("Host", "a")] and [d[0] for d in head.dropped or ()] == ["X_Foo", "X-" + "_" * 100]


def test_a_rejected_head_keeps_the_drops_read_before_the_rejection() -> None:
    head = _head([("Host", "a"), ("X_Foo", "1"), ("X-Big", "v" * 9000), ("X_Bar", "2")])
    with pytest.raises(HeadRejected):
        check_head(head, LIMITS)
    assert head.dropped == [("X_Foo", "1", "a", None)]


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
    values = (b"204", b"1", b"2", b"rid")
    for index, expected in enumerate(tails):
        tail = policy.response_tails[index]  # 2 * (upstream sent Via) + (upstream sent Server)
        if policy.tail_values is not None:
            tail = tail % policy.tail_values(values)
        assert tail == expected
