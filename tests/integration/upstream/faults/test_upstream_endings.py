"""Every way an upstream connection can end, for http and https upstreams, on new and on pooled connections.

Each row is an upstream that ends its connection one way (closed at once, reset, closed while the request is still
being written, before the head, mid-head, mid-body, a TLS close_notify, a broken TLS record, a TLS alert, a response
nginx refuses). For each, the client must get Kong's answer at once (502, or the truncated 200 when the head was
already sent), nginx's error line for that phase, its access-log line, and afterwards the gateway must hold no
connection, no idle pooled connection and no descriptor more than before: nothing hangs, nothing leaks, nothing
poisons the pool.

"Pooled": the upstream answers the very first request and fails every later one, so the failing request reuses the
kept-alive connection (and any retry meets the same failure on a fresh one).
"""

from __future__ import annotations

import asyncio
import os
import re
import select
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures.certs import make_cert
from tests.fixtures.hostile import OK_KEEPALIVE, HostileUpstream, Peer
from tests.integration.proxy.harness import Gateway, config, read_response, route, running_gateway, service

pytestmark = pytest.mark.timeout(60)

BIG_BODY = 8 * 1024 * 1024  # far more than the socket buffers hold: the upstream fails while it is being written
TLS_RECORD_ALERT = b"\x15\x03\x03\x00\x02\x02\x28"  # a plaintext fatal handshake_failure alert record


#: an ending: what the upstream does with a request, given an event the test sets once its client has the head
Script = Callable[[Peer, threading.Event], None]


def _head_then(data: bytes, end: Callable[[Peer], None], *, once_seen: bool = False) -> Script:
    """Read the request, send ``data``, then ``end``; ``once_seen``: only once the client has the response head.

    A RST makes the receiving kernel drop what it has not delivered yet, so a reset mid-body waits until the head
    reached the client: otherwise it could overtake the head and turn the case into "reset before the head".
    """

    def ending(peer: Peer, head_seen: threading.Event) -> None:
        if peer.read_request() is None:
            return
        if data:
            peer.send(data)
        if once_seen:
            head_seen.wait(5)
        end(peer)

    return ending


def _close_at_once(peer: Peer, head_seen: threading.Event) -> None:
    peer.close()


def _reset_at_once(peer: Peer, head_seen: threading.Event) -> None:
    peer.reset()


def _close_while_writing(peer: Peer, head_seen: threading.Event) -> None:
    peer.read_some_body(16 * 1024)
    peer.close()  # unread request bytes: the kernel answers with a RST


def _notify_at_once(peer: Peer, head_seen: threading.Event) -> None:
    peer.close_notify()
    peer.drain()


def _corrupted_record(peer: Peer, head_seen: threading.Event) -> None:
    if peer.read_request() is not None:
        peer.send_corrupted(OK_KEEPALIVE)
        peer.drain()


def _plain_alert(peer: Peer, head_seen: threading.Event) -> None:
    if peer.read_request() is not None:
        peer.send_raw(TLS_RECORD_ALERT)
        peer.drain()


def _notify_before_head(peer: Peer, head_seen: threading.Event) -> None:
    if peer.read_request() is not None:
        peer.close_notify()
        peer.drain()


def _then_drain(peer: Peer) -> None:
    peer.drain()


HEADER = "reading response header from upstream"
AT_ONCE = (
    rf"((upstream prematurely closed connection|recv\(\) failed \((104|32): [^)]+\)) while {HEADER}"
    r"|connect\(\) failed \(104: Connection reset by peer\) while connecting to upstream)"
)
WHILE_WRITING = (
    r"(upstream prematurely closed connection|(writev|recv)\(\) failed \((104|32): [^)]+\)) "
    rf"while (sending request to upstream|{HEADER})"
)
SSL_READ = rf"SSL_read\(\) failed \(SSL: error:SSL routines::[^)]+\) while {HEADER}"


@dataclass(frozen=True)
class Ending:
    name: str
    script: Script
    status: int
    log: str  # a regex for nginx's error line
    tls_only: bool = False
    new_only: bool = False
    big_body: bool = False
    truncated: bool = False  # the head was sent: the client gets it, then the connection closes mid-body


ENDINGS = [
    Ending("closed at once", _close_at_once, 502, AT_ONCE),
    Ending("reset at once", _reset_at_once, 502, AT_ONCE),
    Ending("closed while the request is written", _close_while_writing, 502, WHILE_WRITING, big_body=True),
    Ending(
        "closed before the head",
        _head_then(b"", Peer.close),
        502,
        f"upstream prematurely closed connection while {HEADER}",
    ),
    Ending(
        "reset before the head",
        _head_then(b"", Peer.reset),
        502,
        rf"recv\(\) failed \(104: Connection reset by peer\) while {HEADER}",
    ),
    Ending(
        "closed mid-head",
        _head_then(b"HTTP/1.1 200 OK\r\nContent-Le", Peer.close),
        502,
        f"upstream prematurely closed connection while {HEADER}",
    ),
    Ending(
        "closed mid-body",
        _head_then(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10, Peer.close, once_seen=True),
        200,
        "upstream prematurely closed connection while reading upstream",
        truncated=True,
    ),
    Ending(
        "reset mid-body",
        _head_then(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10, Peer.reset, once_seen=True),
        200,
        r"recv\(\) failed \(104: Connection reset by peer\) while reading upstream",
        truncated=True,
    ),
    Ending(
        "closed mid-chunk",
        _head_then(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\nhello", Peer.close, once_seen=True),
        200,
        "upstream prematurely closed connection while reading upstream",
        truncated=True,
    ),
    Ending(
        "invalid head",
        _head_then(b"HTTP/1.1 2x0 OK\r\n\r\n", _then_drain),
        502,
        f"upstream sent invalid header while {HEADER}",
    ),
    Ending(
        "101 to a plain request",
        _head_then(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n", _then_drain
        ),
        502,
        f'upstream sent "101 Switching Protocols" response to a non-upgrade request while {HEADER}',
    ),
    Ending("TLS close_notify at once", _notify_at_once, 502, AT_ONCE, tls_only=True),
    Ending(
        "TLS close_notify before the head",
        _notify_before_head,
        502,
        f"upstream prematurely closed connection while {HEADER}",
        tls_only=True,
    ),
    Ending("TLS record corrupted", _corrupted_record, 502, SSL_READ, tls_only=True),
    Ending("TLS alert", _plain_alert, 502, SSL_READ, tls_only=True),
]

CASES = [
    pytest.param(ending, scheme, pooled, id=f"{scheme}-{'pooled' if pooled else 'new'}-{ending.name}")
    for ending in ENDINGS
    for scheme in ("http", "https")
    for pooled in (False, True)
    if not (ending.tls_only and scheme == "http")
]


@pytest.fixture(scope="module")
def upstream_tls() -> ssl.SSLContext:
    leaf = make_cert("upstream.test", sans=["upstream.test", "127.0.0.1"])
    directory = Path(os.environ.get("TMPDIR", "/tmp")) / f"hostile-{os.getpid()}"
    directory.mkdir(exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    cert.write_text(leaf.cert_pem)
    key.write_text(leaf.key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def _script(ending: Ending, pooled: bool, head_seen: threading.Event) -> Callable[[Peer, Callable[[], int]], None]:
    def script(peer: Peer, next_request: Callable[[], int]) -> None:
        while True:
            if pooled and next_request() == 1:
                if peer.read_request() is None:
                    return
                peer.send(OK_KEEPALIVE)
                # the failing request is the next one on this connection: wait for its first bytes, so that an
                # ending "at once" does not reset the connection under the first response
                select.select([peer.sock], [], [], 10)
                continue
            ending.script(peer, head_seen)
            return

    return script


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def _settled(gw: Gateway, baseline: int, timeout: float = 5.0) -> tuple[int, int, int, int]:
    """Wait (bounded) until the gateway holds nothing more than at the start; returns what it still holds.

    Descriptors are the test process's: one that a previous test's thread closes meanwhile can only lower the
    count, so "no more than the baseline" is the check."""
    state = gw.state
    deadline = time.monotonic() + timeout
    while True:
        held = (
            state.connections_active,
            state.connections_writing,
            state.pool.idle_count(),
            max(0, _open_fds() - baseline),
        )
        if held == (0, 0, 0, 0) or time.monotonic() > deadline:
            return held
        await asyncio.sleep(0.02)


async def _request(port: int, body: int, truncated: bool, head_seen: threading.Event) -> tuple[int, bytes, bool]:
    """One request on a new client connection: (status, body received, closed by the gateway afterwards).

    Whether the gateway closed the connection is only waited for when the response is ``truncated``: after a
    complete 502 the connection stays open (keep-alive), as Kong's does."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        if body:
            writer.write(b"POST /e HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % body)
            chunk = b"b" * 65536
            try:
                for _ in range(body // len(chunk)):
                    writer.write(chunk)
                    await writer.drain()
            except ConnectionError:
                pass  # the gateway answered and closed while the body was still going out
        else:
            writer.write(b"GET /e HTTP/1.1\r\nHost: t\r\n\r\n")
        status_line = await reader.readline()
        status = int(status_line.split()[1])
        head = await reader.readuntil(b"\r\n\r\n")
        head_seen.set()
        length = re.search(rb"(?i)content-length: (\d+)", head)
        received = b""
        try:
            if length is not None:
                received = await reader.readexactly(int(length.group(1)))
            else:
                received = await reader.read(65536)
        except asyncio.IncompleteReadError as exc:
            received = exc.partial
        closed = not await reader.read(65536) if truncated else False
        return status, received, closed
    finally:
        writer.close()


@pytest.mark.parametrize(("ending", "scheme", "pooled"), CASES)
async def test_upstream_ending(
    tmp_path: Path, ending: Ending, scheme: str, pooled: bool, upstream_tls: ssl.SSLContext
) -> None:
    context = upstream_tls if scheme == "https" else None
    head_seen = threading.Event()
    with HostileUpstream(_script(ending, pooled, head_seen), context) as upstream:
        svc = service("127.0.0.1", upstream.port, protocol=scheme, retries=1, read_timeout=10000)
        cfg = config([svc], [route(svc, paths=["/e"])])
        async with running_gateway(tmp_path, cfg) as gw:
            baseline = _open_fds()
            if pooled:
                reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
                writer.write(b"GET /e HTTP/1.1\r\nHost: t\r\n\r\n")
                first_status, _, first_body, _ = await read_response(reader)
                writer.close()
                assert (first_status, first_body) == (200, b"ok")
            started = time.monotonic()
            status, received, closed = await asyncio.wait_for(
                _request(gw.port, BIG_BODY if ending.big_body else 0, ending.truncated, head_seen), timeout=8
            )
            elapsed = time.monotonic() - started
            held = await _settled(gw, baseline)
            log = gw.error_log
            access = gw.access_lines()
    assert status == ending.status, log
    assert elapsed < 5, f"the answer took {elapsed:.1f}s"
    if ending.truncated:
        assert closed and len(received) < 100
    assert re.search(ending.log, log), log
    assert "Traceback" not in log and "[alert]" not in log, log
    method = "POST" if ending.big_body else "GET"
    assert any(f'"{method} /e HTTP/1.1" {status} ' in line for line in access), access
    assert held == (0, 0, 0, 0), f"still held (connections, writing, idle pooled, extra fds): {held}"
