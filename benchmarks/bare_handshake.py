"""The least a server-side TLS handshake costs in this process, and what other Python work between handshakes adds.

    python -m benchmarks.bare_handshake [--key rsa|ecdsa] [--connections 400] [--rounds 5] [--churn 0,5000,20000]

Why: under S5 (a new TLS connection per request) the gateway's OpenSSL runs 5-15% slower per function than the
same OpenSSL in the floor (``benchmarks/floor.py``) or nginx (TUNING.md, "S5 against its floor"). This measures the
cause in isolation: one connection after the other, each a full TLS 1.3 handshake over memory BIOs between a
pyOpenSSL client and a pyOpenSSL server (session tickets and the session cache off, as S5 configures the servers),
then one request and its response with a close_notify. Only the server's calls are timed (process CPU), as
``benchmarks.inprocess_handshake`` times the gateway's. Between two connections, outside the timing, ``churn``
small Python objects are made and dropped (a dict with a new string each): about what the Python around one
connection allocates and touches. With no churn the figure is the handshake on warm caches; with churn, what the
same handshake costs once other work has evicted OpenSSL's code and data.

Every connection is checked outside the timing: the client decrypted the response and the server's close_notify.
Prints best and median microseconds per connection for each churn level.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from OpenSSL import SSL

from benchmarks.pki import Pki, make_pki

__all__ = ["BareHandshakes", "main"]

REQUEST = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 24\r\nConnection: close\r\n\r\nhello from the upstream\n"
_FLIGHT = 65536


def _step(conn: SSL.Connection) -> bool:
    """One handshake step; True once the handshake is complete."""
    try:
        conn.do_handshake()
    except SSL.WantReadError:
        return False
    return True


def _drain(conn: SSL.Connection) -> bytes:
    """Everything ``conn`` has written to its outgoing memory BIO."""
    parts: list[bytes] = []
    while True:
        try:
            parts.append(conn.bio_read(_FLIGHT))
        except SSL.WantReadError:
            return b"".join(parts)


def _received(conn: SSL.Connection) -> tuple[bytes, bool]:
    """The plaintext ``conn`` can read now, and whether a close_notify ended it."""
    parts: list[bytes] = []
    while True:
        try:
            parts.append(conn.recv(_FLIGHT))
        except SSL.WantReadError:
            return b"".join(parts), False
        except SSL.ZeroReturnError:
            return b"".join(parts), True


class BareHandshakes:
    """A pyOpenSSL server and client on ``pki``'s certificates, handshaking over memory BIOs."""

    def __init__(self, pki: Pki) -> None:
        self.server_context = SSL.Context(SSL.TLS_SERVER_METHOD)
        self.server_context.set_options(SSL.OP_NO_TICKET)
        self.server_context.set_session_cache_mode(SSL.SESS_CACHE_OFF)
        self.server_context.use_certificate_chain_file(str(pki.server_chain))
        self.server_context.use_privatekey_file(str(pki.server_key))
        self.client_context = SSL.Context(SSL.TLS_CLIENT_METHOD)
        self.client_context.set_min_proto_version(SSL.TLS1_3_VERSION)  # wrk's, against every S5 server
        self.response = RESPONSE  # what the server answers (a test changes it)
        self.cpu_ns = 0  # process CPU spent in the server's calls

    def connection(self) -> None:
        """One connection: handshake, request, response, close_notify; raises if the client did not get them."""
        client = SSL.Connection(self.client_context, None)
        client.set_tlsext_host_name(b"localhost")
        client.set_connect_state()
        began = time.process_time_ns()
        server = SSL.Connection(self.server_context, None)
        server.set_accept_state()
        self.cpu_ns += time.process_time_ns() - began
        _step(client)
        flight = _drain(client)
        for _ in range(4):  # TLS 1.3: the server's one flight, then the client is done
            began = time.process_time_ns()
            server.bio_write(flight)
            _step(server)
            answer = _drain(server)
            self.cpu_ns += time.process_time_ns() - began
            client.bio_write(answer)
            if _step(client):
                break
            flight = _drain(client)
        else:
            raise RuntimeError("the handshake did not complete")
        client.sendall(REQUEST)
        flight = _drain(client)  # the client's Finished and the request
        began = time.process_time_ns()
        server.bio_write(flight)
        _step(server)
        request, _ = _received(server)
        server.sendall(self.response)
        server.shutdown()
        answer = _drain(server)
        self.cpu_ns += time.process_time_ns() - began
        if request != REQUEST:
            raise RuntimeError(f"the server read {request!r}")
        client.bio_write(answer)
        response, closed = _received(client)
        if response != RESPONSE or not closed:
            raise RuntimeError(f"the client read {response!r} (close_notify: {closed})")


def _churn(objects: int) -> None:
    """Make and drop ``objects`` small objects (the Python work between two connections, outside the timing)."""
    made = [{"index": index, "text": str(index)} for index in range(objects)]
    del made


def measure(pki: Pki, connections: int, rounds: int, churn: int) -> list[float]:
    """Server CPU microseconds per connection, one figure per round."""
    bench = BareHandshakes(pki)
    for _ in range(20):  # warm-up: contexts, providers, the allocator
        bench.connection()
    figures: list[float] = []
    for _ in range(rounds):
        bench.cpu_ns = 0
        for _ in range(connections):
            if churn:
                _churn(churn)
            bench.connection()
        figures.append(bench.cpu_ns / connections / 1000)
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--key", choices=("rsa", "ecdsa"), default="rsa")
    parser.add_argument("--connections", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--churn", default="0,5000,20000", help="comma list of objects made between connections")
    args = parser.parse_args(argv)
    levels = [int(level) for level in args.churn.split(",")]
    with tempfile.TemporaryDirectory(prefix="bare-handshake-") as tmp:
        pki = make_pki(Path(tmp), args.key)
        for churn in levels:
            figures = measure(pki, args.connections, args.rounds, churn)
            print(
                f"{args.key}, churn {churn:,}: server CPU per connection best {min(figures):.1f} us, "
                f"median {statistics.median(figures):.1f} us ({args.connections:,} connections x {args.rounds} rounds)"
            )


if __name__ == "__main__":
    main()
