"""A threaded HTTP/1.1 upstream for the downstream protocol tests: what it received, proven by content.

- ``GET /big?n=N``: N bytes of a repeating pattern (``pattern(N)``), with ``Content-Length``.
- ``POST /echo`` (any method): JSON with the body's length and SHA-256, the request line and the headers received.
- ``GET /barrier?n=N``: answers only once N requests wait here at the same time (a ``threading.Barrier``, bounded by
  ``BARRIER_TIMEOUT``; 504 when it breaks): proof that N streams of one connection were in flight together.
- anything else: JSON of the request line and headers.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

BARRIER_TIMEOUT = 10.0


def pattern(n: int) -> bytes:
    block = bytes(range(256)) * 64
    return (block * (n // len(block) + 1))[:n]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    barriers: dict[int, threading.Barrier] = {}
    lock = threading.Lock()

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def _reply(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts: list[bytes] = []
            while True:
                line = self.rfile.readline()
                if not line:  # the gateway dropped this request (its client reset the stream): nothing to answer
                    return b"".join(parts)
                size = int(line.split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(parts)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _describe(self, body: bytes) -> bytes:
        return json.dumps(
            {
                "request_line": self.requestline,
                "headers": [[k.lower(), v] for k, v in self.headers.items()],
                "length": len(body),
                "sha256": hashlib.sha256(body).hexdigest(),
            }
        ).encode()

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if url.path == "/big":
            self._reply(200, pattern(int(query["n"][0])), "application/octet-stream")
        elif url.path == "/barrier":
            n = int(query["n"][0])
            with self.lock:
                barrier = self.barriers.setdefault(n, threading.Barrier(n, timeout=BARRIER_TIMEOUT))
            try:
                barrier.wait()
            except threading.BrokenBarrierError:
                self._reply(504, b'{"barrier":"broken"}')
                return
            self._reply(200, b'{"barrier":"passed"}')
        else:
            self._reply(200, self._describe(self._body()))

    do_HEAD = do_GET

    def do_POST(self) -> None:
        self._reply(200, self._describe(self._body()))

    do_PUT = do_POST


@contextmanager
def running_upstream() -> Iterator[int]:
    """Serve on a free loopback port in a thread; yields the port, shuts down on exit."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
