"""``response_head.status_line``: the client's status line, made once per status for the upstream's reason."""

from __future__ import annotations

from gateway.proxy.response_head import status_line


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
