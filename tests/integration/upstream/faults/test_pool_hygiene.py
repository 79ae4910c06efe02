"""A connection goes back to the pool only when its response ended exactly where its framing says.

Each upstream answers its connection's first request with a response whose end leaves the connection in doubt (bytes
beyond ``Content-Length``, a second response nobody asked for, data after the final chunk, a body after a HEAD
response's head, a body ended by the close, an answer sent before the request body was read), and every later request
with a clean ``two``. The next request through the gateway must get ``two`` from a new upstream connection at once,
never the leftovers or a timeout; nginx's warning is logged where nginx logs one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures.hostile import HostileUpstream, Peer
from tests.integration.proxy.harness import config, read_response, route, running_gateway, service

pytestmark = pytest.mark.timeout(30)

TWO = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ntwo"
EXCESS_WARNING = 'upstream sent more data than specified in "Content-Length" header while reading upstream'
CHUNK_WARNING = "upstream sent data after final chunk while reading upstream"


@dataclass(frozen=True)
class Doubt:
    name: str
    first: bytes  # the whole first answer, written in one send
    body: bytes  # what the client must receive of it
    warning: str | None = None
    method: str = "GET"
    request_body: int = 0
    read_body: bool = True  # False: answer after the head only, leaving the request body unread


DOUBTS = [
    Doubt(
        "bytes beyond Content-Length", b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\noneGARBAGE", b"one", EXCESS_WARNING
    ),
    Doubt(
        "an extra response",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\noneHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nSTALE",
        b"one",
        EXCESS_WARNING,
    ),
    Doubt(
        "data after the final chunk",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\none\r\n0\r\n\r\nSTALE",
        b"one",
        CHUNK_WARNING,
    ),
    Doubt(
        "a body after a HEAD response",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nSTALE",
        b"",
        EXCESS_WARNING,
        "HEAD",
    ),
    Doubt("a body ended by the close (HTTP/1.0)", b"HTTP/1.0 200 OK\r\n\r\none", b"one"),
    Doubt(
        "an answer before the request body was read",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none",
        b"one",
        method="POST",
        request_body=8 * 1024 * 1024,  # more than the socket buffers: the gateway is still sending it
        read_body=False,
    ),
]


def _script(doubt: Doubt) -> Callable[[Peer, Callable[[], int]], None]:
    def script(peer: Peer, next_request: Callable[[], int]) -> None:
        while True:
            if next_request() == 1:
                if (peer.read_request() if doubt.read_body else peer.read_head()) is None:
                    return
                peer.send(doubt.first)
                if doubt.first.startswith(b"HTTP/1.0"):
                    return  # the close ends the body
                continue
            if peer.read_request() is None:
                return
            peer.send(TWO)

    return script


@pytest.mark.parametrize("doubt", DOUBTS, ids=[d.name for d in DOUBTS])
async def test_a_connection_in_doubt_is_never_reused(tmp_path: Path, doubt: Doubt) -> None:
    with HostileUpstream(_script(doubt)) as upstream:
        svc = service("127.0.0.1", upstream.port, read_timeout=3000, retries=0)
        async with running_gateway(tmp_path, config([svc], [route(svc, paths=["/"])])) as gw:
            reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
            framing = b"Content-Length: %d\r\n" % doubt.request_body if doubt.request_body else b""
            writer.write(b"%s / HTTP/1.1\r\nHost: t\r\n%s\r\n" % (doubt.method.encode(), framing))
            writer.write(b"b" * doubt.request_body)
            first = await read_response(reader, head_method=doubt.method == "HEAD")
            writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            second = await asyncio.wait_for(read_response(reader), timeout=10)
            writer.close()
            log = gw.error_log
            idle = gw.state.pool.idle_count()
    assert (first[0], first[2]) == (200, doubt.body)
    assert (second[0], second[2]) == (200, b"two"), log
    assert upstream.connections == 2  # the second request went over a new connection
    assert idle == 1  # only the clean connection is kept
    if doubt.warning is not None:
        assert doubt.warning in log, log
        assert "[warn]" in log.split(doubt.warning)[0].splitlines()[-1]


async def test_a_closed_upstream_connection_is_freed_without_a_collection(tmp_path: Path) -> None:
    """A closed connection drops its parser (whose callbacks are its own bound methods), so reference counting frees
    it at once: with the garbage collector off, no closed ``UpstreamConnection`` is left behind."""
    import gc

    from gateway.upstream.connection import UpstreamConnection

    def live() -> int:
        return sum(1 for o in gc.get_objects() if isinstance(o, UpstreamConnection) and o.closed)

    def script(peer: Peer, next_request: Callable[[], int]) -> None:
        while peer.read_request() is not None:
            next_request()
            peer.send(TWO)

    with HostileUpstream(script) as upstream:
        svc = service("127.0.0.1", upstream.port)
        cfg = config([svc], [route(svc, paths=["/"])])
        async with running_gateway(tmp_path, cfg, upstream_keepalive_pool_size="0") as gw:
            gc.collect()
            gc.disable()
            try:
                before = live()
                for _ in range(5):
                    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
                    writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
                    assert (await read_response(reader))[2] == b"two"
                    writer.close()
                for _ in range(20):  # the closes reach connection_lost within a few loop turns
                    await asyncio.sleep(0)
                left = live() - before
            finally:
                gc.enable()
    assert upstream.connections == 5
    assert left == 0
