"""The floor (``benchmarks/floor.py``) does the scenario's work and no less: through it, S1-S3's and S5's requests
get the upstream's answer, an upstream it cannot verify (another CA, another name) gets no request at all, and S5's
``Connection: close`` is answered in kind, with a close_notify, over one pooled upstream connection.

Real peers: the benchmarks' nginx upstream (``ssl_verify_client on`` for S3), curl and Python's ``ssl`` as clients;
a counting HTTP/1.1 upstream (stdlib ``socketserver``) where the test must see the upstream connections.
"""

from __future__ import annotations

import socket
import socketserver
import ssl
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.processes import Processes, free_port
from benchmarks.run import prepare_environment
from benchmarks.scenarios import SCENARIOS, Environment, start_floor, url_of

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def env() -> Iterator[Environment]:
    with tempfile.TemporaryDirectory(prefix="bench-floor-") as tmp, prepare_environment(Path(tmp)) as (env, _):
        yield env


def _curl(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["curl", "-sk", "--max-time", "5", "-i", url, "-o", "-"], capture_output=True, text=True, timeout=10
    )


@pytest.mark.parametrize("key", ["S1", "S2", "S3", "S5-rsa", "S5-ecdsa"])
def test_the_floor_answers_with_the_upstreams_response(env: Environment, key: str) -> None:
    scenario = next(s for s in SCENARIOS if s.key == key)
    with Processes() as procs:
        server = start_floor(procs, scenario, env)
        first, second = _curl(url_of(scenario, server)), _curl(url_of(scenario, server))
    for result in (first, second):
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("HTTP/1.1 200 OK")
        assert result.stdout.endswith("hello from the upstream\n")


@pytest.mark.parametrize(
    ("ca_of", "name"),
    [("rsa", "localhost"), ("ecdsa", "not-the-upstream.test")],
    ids=["untrusted-ca", "wrong-name"],
)
def test_the_floor_refuses_an_upstream_it_cannot_verify(env: Environment, ca_of: str, name: str) -> None:
    pki = env.pki["ecdsa"]
    args = [str(env.upstream_mtls), "--cert", str(pki.server_chain), "--key", str(pki.server_key)]
    args += ["--upstream-tls", "--ca", str(env.pki[ca_of].root), "--client-cert", str(pki.client_chain)]
    args += ["--client-key", str(pki.client_key), "--upstream-name", name]
    port = free_port()
    with Processes() as procs:
        procs.floor(args, port, env.workdir / f"floor-refuses-{ca_of}.log")
        result = _curl(f"https://127.0.0.1:{port}/")
    assert result.returncode == 52, result  # curl: empty reply from server (the floor closed the connection)
    assert "hello from the upstream" not in result.stdout


class _CountingUpstream(socketserver.ThreadingTCPServer):
    """An HTTP/1.1 keepalive upstream that counts the connections and requests it gets."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _CountingHandler)
        self.connections = self.requests = 0
        self.lock = threading.Lock()


class _CountingHandler(socketserver.StreamRequestHandler):
    server: _CountingUpstream

    def handle(self) -> None:
        with self.server.lock:
            self.server.connections += 1
        while True:
            line = self.rfile.readline()
            if not line:
                return
            while self.rfile.readline() not in (b"\r\n", b""):
                pass
            with self.server.lock:
                self.server.requests += 1
            body = b"counted\n"
            head = b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: %d\r\n\r\n" % len(body)
            self.wfile.write(head + body)


def _close_request(port: int) -> bytes:
    """One S5 request (new TLS connection, ``Connection: close``): everything read until the server's close_notify
    (``recv`` returns ``b""`` only for a clean TLS close; a bare TCP close raises ``SSLEOFError``)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, context.wrap_socket(raw) as tls:
        tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        received = b""
        while chunk := tls.recv(4096):
            received += chunk
    return received


def test_the_floor_answers_connection_close_in_kind_over_one_pooled_upstream(env: Environment) -> None:
    pki = env.pki["rsa"]
    upstream = _CountingUpstream()
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    port = free_port()
    args = [str(upstream.server_address[1]), "--cert", str(pki.server_chain), "--key", str(pki.server_key)]
    try:
        with Processes() as procs:
            procs.floor([*args, "--full-handshakes"], port, env.workdir / "floor-close.log")
            answers = [_close_request(port) for _ in range(3)]
    finally:
        upstream.shutdown()
        upstream.server_close()
    for answer in answers:
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"\r\nConnection: close" in head and b"keep-alive" not in head
        assert body == b"counted\n"
    assert (upstream.connections, upstream.requests) == (1, 3)
