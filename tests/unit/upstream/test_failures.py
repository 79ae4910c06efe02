"""``failures.UpstreamFailure``: nginx's line for each kind in each phase, and the policy derived from the kind."""

from __future__ import annotations

import asyncio
import errno

import pytest

from gateway.tls.engine.errors import TlsRemoteError
from gateway.upstream.connection import UpstreamConnection
from gateway.upstream.failures import Kind, Phase, UpstreamFailure, from_exception

HEADER = Phase.READING_HEADER


@pytest.mark.parametrize(
    ("failure", "text"),
    [
        (
            UpstreamFailure(Kind.ERROR, Phase.CONNECTING, 111, "Connection refused"),
            "connect() failed (111: Connection refused) while connecting to upstream",
        ),
        (
            UpstreamFailure(Kind.ERROR, Phase.SENDING, 32, "Broken pipe"),
            "writev() failed (32: Broken pipe) while sending request to upstream",
        ),
        (
            UpstreamFailure(Kind.ERROR, HEADER, 104, "Connection reset by peer"),
            "recv() failed (104: Connection reset by peer) while reading response header from upstream",
        ),
        (
            UpstreamFailure(Kind.ERROR, Phase.READING_BODY, 104, "Connection reset by peer"),
            "recv() failed (104: Connection reset by peer) while reading upstream",
        ),
        (
            UpstreamFailure(Kind.CLOSED, HEADER),
            "upstream prematurely closed connection while reading response header from upstream",
        ),
        (
            UpstreamFailure(Kind.CLOSED, Phase.READING_BODY),
            "upstream prematurely closed connection while reading upstream",
        ),
        (
            UpstreamFailure(Kind.TIMEOUT, Phase.HANDSHAKING),
            "upstream timed out (110: Connection timed out) while SSL handshaking to upstream",
        ),
        (
            UpstreamFailure(Kind.TIMEOUT, Phase.SENDING),
            "upstream timed out (110: Connection timed out) while sending request to upstream",
        ),
        (
            UpstreamFailure(Kind.TLS, HEADER, 0, "bad record mac"),
            "SSL_read() failed (SSL: error:SSL routines::bad record mac) while reading response header from upstream",
        ),
        (
            UpstreamFailure(Kind.TLS, Phase.SENDING, 0, "bad record mac"),
            "SSL_write() failed (SSL: error:SSL routines::bad record mac) while sending request to upstream",
        ),
        (
            UpstreamFailure(
                Kind.TLS,
                Phase.HANDSHAKING,
                0,
                "upstream SSL certificate verify error: (20:unable to get local issuer certificate)",
            ),
            "upstream SSL certificate verify error: (20:unable to get local issuer certificate)"
            " while SSL handshaking to upstream",
        ),
        (
            UpstreamFailure(Kind.INVALID, HEADER),
            "upstream sent invalid header while reading response header from upstream",
        ),
    ],
)
def test_nginx_line(failure: UpstreamFailure, text: str) -> None:
    assert failure.text() == text


def test_policy_follows_the_kind() -> None:
    assert UpstreamFailure(Kind.TIMEOUT, HEADER).timeout
    assert not UpstreamFailure(Kind.CLOSED, HEADER).timeout
    assert not UpstreamFailure(Kind.INVALID, HEADER).retryable
    assert UpstreamFailure(Kind.ERROR, Phase.CONNECTING).retryable
    # only a reused connection that died before answering is "stale" (retried without using up a try)
    assert UpstreamFailure(Kind.CLOSED, HEADER).stale
    assert not UpstreamFailure(Kind.CLOSED, Phase.READING_BODY).stale
    assert not UpstreamFailure(Kind.TIMEOUT, HEADER).stale
    assert UpstreamFailure(Kind.TLS, Phase.HANDSHAKING).in_handshake


def test_from_exception() -> None:
    reset = from_exception(ConnectionResetError(errno.ECONNRESET, "x"), HEADER)
    assert (reset.kind, reset.errno, reset.detail) == (Kind.ERROR, 104, "Connection reset by peer")
    assert from_exception(None, HEADER).kind is Kind.CLOSED
    tls = from_exception(TlsRemoteError("decryption failed or bad record mac"), HEADER)
    assert (tls.kind, tls.detail) == (Kind.TLS, "decryption failed or bad record mac")


class _ClosedUvTransport:
    """What uvloop's TCP transport does once closed: ``is_closing()`` and a write that raises."""

    def is_closing(self) -> bool:
        return True

    def write(self, data: bytes) -> None:
        raise RuntimeError("unable to perform operation on <TCPTransport closed=True>; the handler is closed")


def test_body_bytes_for_a_closing_connection_are_dropped_not_raised() -> None:
    loop = asyncio.new_event_loop()
    try:
        up = UpstreamConnection(loop, None, ("127.0.0.1", 1))
        up.transport = _ClosedUvTransport()  # type: ignore[assignment]
        up.send(b"body")  # must not raise: connection_lost will report the ending
    finally:
        loop.close()


def test_a_connection_lost_while_idle_keeps_how_it_ended() -> None:
    loop = asyncio.new_event_loop()
    try:
        up = UpstreamConnection(loop, None, ("127.0.0.1", 1))
        up.connection_lost(ConnectionResetError(errno.ECONNRESET, "reset"))
        assert up.closed and up.ended is not None and up.ended.kind is Kind.ERROR
    finally:
        loop.close()
