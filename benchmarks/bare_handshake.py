"""The least a server-side TLS handshake costs in this process, and what other Python work between handshakes adds.

    python -m benchmarks.bare_handshake [--key rsa|ecdsa] [--connections 400] [--rounds 5] [--churn 0,5000,20000]
                                        [--gateway-request]

Why: under S5 (a new TLS connection per request) the gateway's OpenSSL runs 5-15% slower per function than the
same OpenSSL in the floor (``benchmarks/floor.py``) or nginx (TUNING.md, "S5 against its floor"). This measures the
cause in isolation: one connection after the other, each a full TLS 1.3 handshake over memory BIOs between a
pyOpenSSL client and a pyOpenSSL server (session tickets and the session cache off, as S5 configures the servers),
then one request and its response with a close_notify. Only the server's calls are timed (process CPU), as
``benchmarks.inprocess_handshake`` times the gateway's. Between two connections, outside the timing, ``churn``
small Python objects are made and dropped (a dict with a new string each): about what the Python around one
connection allocates and touches. With no churn the figure is the handshake on warm caches; with churn, what the
same handshake costs once other work has evicted OpenSSL's code and data.

With ``--gateway-request``, each connection also serves one request through the gateway's plain HTTP path inside
its timed region (``benchmarks.inprocess.Harness.request``: a keepalive ``GET`` parsed, routed and proxied to a
pooled upstream, its response relayed), and the same request is then timed alone, one after the other: what the
request path costs with its code and data warm, against what it costs between two handshakes (TUNING.md, "S5: the
request path runs cold").

Every connection is checked outside the timing: the client decrypted the response and the server's close_notify.
Prints best and median microseconds per connection for each churn level.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from OpenSSL import SSL

from benchmarks.inprocess import LOOP_EVERY
from benchmarks.inprocess import Harness as RequestHarness
from benchmarks.pki import Pki, make_pki

__all__ = ["BareHandshakes", "main", "server_answer", "server_flight"]

REQUEST = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 24\r\nConnection: close\r\n\r\nhello from the upstream\n"
_FLIGHT = 65536


def handshake_step(conn: SSL.Connection) -> bool:
    """One handshake step; True once the handshake is complete."""
    try:
        conn.do_handshake()
    except SSL.WantReadError:
        return False
    return True


def drain_outgoing(conn: SSL.Connection) -> bytes:
    """Everything ``conn`` has written to its outgoing memory BIO."""
    parts: list[bytes] = []
    while True:
        try:
            parts.append(conn.bio_read(_FLIGHT))
        except SSL.WantReadError:
            return b"".join(parts)


def read_plaintext(conn: SSL.Connection) -> tuple[bytes, bool]:
    """The plaintext ``conn`` can read now, and whether a close_notify ended it."""
    parts: list[bytes] = []
    while True:
        try:
            parts.append(conn.recv(_FLIGHT))
        except SSL.WantReadError:
            return b"".join(parts), False
        except SSL.ZeroReturnError:
            return b"".join(parts), True


def server_flight(server: SSL.Connection, flight: bytes) -> bytes:
    """The server's handshake step on the client's ``flight``: what it answers."""
    server.bio_write(flight)
    handshake_step(server)
    return drain_outgoing(server)


def server_answer(server: SSL.Connection, flight: bytes, response: bytes) -> tuple[bytes, bytes]:
    """The server on the client's last flight (its Finished and the request): ``(the request it read, what it wrote:
    the handshake's end, ``response`` and a close_notify)``."""
    server.bio_write(flight)
    handshake_step(server)
    request, _ = read_plaintext(server)
    server.sendall(response)
    server.shutdown()
    return request, drain_outgoing(server)


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
        #: run inside the server's timed region once the connection is answered (``--gateway-request``), or None
        self.extra: Callable[[], None] | None = None

    def connection(self) -> None:
        """One connection: handshake, request, response, close_notify; raises if the client did not get them."""
        client = SSL.Connection(self.client_context, None)
        client.set_tlsext_host_name(b"localhost")
        client.set_connect_state()
        began = time.process_time_ns()
        server = SSL.Connection(self.server_context, None)
        server.set_accept_state()
        self.cpu_ns += time.process_time_ns() - began
        handshake_step(client)
        flight = drain_outgoing(client)
        for _ in range(4):  # TLS 1.3: the server's one flight, then the client is done
            began = time.process_time_ns()
            answer = server_flight(server, flight)
            self.cpu_ns += time.process_time_ns() - began
            client.bio_write(answer)
            if handshake_step(client):
                break
            flight = drain_outgoing(client)
        else:
            raise RuntimeError("the handshake did not complete")
        client.sendall(REQUEST)
        flight = drain_outgoing(client)  # the client's Finished and the request
        began = time.process_time_ns()
        request, answer = server_answer(server, flight, self.response)
        if self.extra is not None:
            self.extra()
        self.cpu_ns += time.process_time_ns() - began
        if request != REQUEST:
            raise RuntimeError(f"the server read {request!r}")
        client.bio_write(answer)
        response, closed = read_plaintext(client)
        if response != RESPONSE or not closed:
            raise RuntimeError(f"the client read {response!r} (close_notify: {closed})")


def _churn(objects: int) -> None:
    """Make and drop ``objects`` small objects (the Python work between two connections, outside the timing)."""
    made = [{"index": index, "text": str(index)} for index in range(objects)]
    del made


async def measure(
    pki: Pki, connections: int, rounds: int, churn: int, request: Callable[[], None] | None = None
) -> list[float]:
    """Server CPU microseconds per connection, one figure per round; ``request`` runs in each connection's timed
    region. The loop turns every ``LOOP_EVERY`` connections, untimed (the request path holds its writes for the
    tick's end, ``benchmarks.inprocess``)."""
    bench = BareHandshakes(pki)
    bench.extra = request
    for _ in range(20):  # warm-up: contexts, providers, the allocator
        bench.connection()
    figures: list[float] = []
    for _ in range(rounds):
        bench.cpu_ns = 0
        for done in range(1, connections + 1):
            if churn:
                _churn(churn)
            bench.connection()
            if done % LOOP_EVERY == 0:
                await asyncio.sleep(0)
        figures.append(bench.cpu_ns / connections / 1000)
    return figures


async def measure_alone(request: Callable[[], None], count: int) -> float:
    """CPU microseconds of ``request``, called ``count`` times in a row (its code and data warm)."""
    spent = 0
    for done in range(1, count + 1):
        began = time.process_time_ns()
        request()
        spent += time.process_time_ns() - began
        if done % LOOP_EVERY == 0:
            await asyncio.sleep(0)
    return spent / count / 1000


async def _run(args: argparse.Namespace, levels: list[int]) -> None:
    with tempfile.TemporaryDirectory(prefix="bare-handshake-") as tmp:
        pki = make_pki(Path(tmp) / "pki", args.key)
        harness = RequestHarness(tmp) if args.gateway_request else None
        request = None
        if harness is not None:
            await harness.warm_up()
            request = harness.request
        label = ", with the gateway's request" if request is not None else ""
        for churn in levels:
            figures = await measure(pki, args.connections, args.rounds, churn, request)
            print(
                f"{args.key}, churn {churn:,}{label}: server CPU per connection best {min(figures):.1f} us, "
                f"median {statistics.median(figures):.1f} us ({args.connections:,} connections x {args.rounds} rounds)"
            )
        if harness is not None:
            alone = [await measure_alone(harness.request, args.connections) for _ in range(args.rounds)]
            served = (20 + args.connections * args.rounds) * len(levels) + args.connections * args.rounds
            if harness.upstream_requests != 1 + served:
                raise RuntimeError(f"{harness.upstream_requests - 1} requests reached the upstream, not {served}")
            await harness.serve(1)  # and the path still answers 200
            print(
                f"the gateway's request alone, one after the other: best {min(alone):.1f} us, "
                f"median {statistics.median(alone):.1f} us"
            )
            harness.state.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--key", choices=("rsa", "ecdsa"), default="rsa")
    parser.add_argument("--connections", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--churn", default="0,5000,20000", help="comma list of objects made between connections")
    parser.add_argument(
        "--gateway-request", action="store_true", help="serve one gateway request per connection, and alone"
    )
    args = parser.parse_args(argv)
    levels = [int(level) for level in args.churn.split(",")]
    import uvloop

    uvloop.run(_run(args, levels))


if __name__ == "__main__":
    main()
