"""``response_head``: the client's status line (made once per status for the upstream's reason) and the sorting of
the upstream's headers, whatever their spelling."""

from __future__ import annotations

import pytest

from gateway.proxy.response_head import scan_headers, status_line


def test_a_status_line_is_made_once_for_the_reason_the_upstream_gives() -> None:
    first = status_line(299, b"Fine")
    assert first == b"HTTP/1.1 299 Fine\r\n"
    assert status_line(299, b"Fine") is first  # remembered


def test_another_reason_for_the_same_status_gets_its_own_line() -> None:
    assert status_line(298, b"One") == b"HTTP/1.1 298 One\r\n"
    assert status_line(298, b"Other reason") == b"HTTP/1.1 298 Other reason\r\n"
    assert status_line(298, b"") == b"HTTP/1.1 298 \r\n"  # an upstream may send none, nginx passes it so
    assert status_line(298, b"One") == b"HTTP/1.1 298 One\r\n"  # the first one is still the one remembered


def test_a_long_reason_is_not_remembered() -> None:
    reason = b"x" * 100
    line = status_line(297, reason)
    assert line == b"HTTP/1.1 297 " + reason + b"\r\n"
    assert status_line(297, reason) is not line
    assert status_line(297, b"Short") is status_line(297, b"Short")


def _spelled(style: str, name: bytes) -> bytes:
    return {"nginx": name, "lower": name.lower(), "upper": name.upper()}[style]


@pytest.mark.parametrize("style", ["nginx", "lower", "upper"])
def test_the_usual_headers_sort_alike_however_spelled(style: str) -> None:
    headers = [
        (_spelled(style, b"Server"), b"nginx"),
        (_spelled(style, b"Date"), b"Sun, 06 Dec 2026 20:00:00 GMT"),
        (_spelled(style, b"Content-Type"), b"text/plain"),
        (_spelled(style, b"Content-Length"), b"24"),
        (_spelled(style, b"Connection"), b"keep-alive"),
        (b"X-Same-Len", b"kept"),  # ten bytes, as Connection
        (b"Data", b"kept too"),  # four bytes, as Date
    ]
    rest, content_type, content_length, has_via, has_server, has_date = scan_headers(headers, None, True)
    server, date = _spelled(style, b"Server"), _spelled(style, b"Date")
    assert rest == [
        server + b": nginx\r\n",
        date + b": Sun, 06 Dec 2026 20:00:00 GMT\r\n",
        b"X-Same-Len: kept\r\n",
        b"Data: kept too\r\n",
    ]
    assert (content_type, content_length, has_via, has_server, has_date) == (b"text/plain", b"24", False, True, True)


def test_a_connection_header_listing_names_drops_them_from_the_usual_path_too() -> None:
    headers = [(b"Connection", b"close, Date"), (b"Date", b"x"), (b"Server", b"s"), (b"Keep-Alive", b"timeout=5")]
    rest, _type, _length, _via, has_server, has_date = scan_headers(headers, None, True)
    assert rest == [b"Server: s\r\n"]
    assert (has_server, has_date) == (True, False)
