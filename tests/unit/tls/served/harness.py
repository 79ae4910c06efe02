"""Real handshakes against the certificate index: a blocking pyOpenSSL server thread on loopback, plus clients.

The server accepts connections on ``127.0.0.1``, runs the handshake with the base context and the SNI callback
under test, and reports each outcome (the entry the callback chose, or the error) on a queue. Clients are
Python's ``ssl`` module, ``openssl s_client`` and an in-memory pyOpenSSL pair; every wait is bounded.
"""

from __future__ import annotations

import queue
import select
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from OpenSSL import SSL

from gateway.tls.served.certificates import CertificateEntry

TIMEOUT = 10.0


class Holder:
    """Stands in for the ``TlsSession`` as the connection's app data: the callback records its choice here."""

    __slots__ = ("server_certificate",)

    def __init__(self) -> None:
        self.server_certificate: CertificateEntry | None = None


@dataclass
class Outcome:
    entry: CertificateEntry | None
    error: BaseException | None
    alpn: bytes | None = None


def _drive(conn: SSL.Connection, sock: socket.socket, op: Callable[[], Any], deadline: float) -> Any:
    while True:
        try:
            return op()
        except SSL.WantReadError:
            wait_read = True
        except SSL.WantWriteError:
            wait_read = False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("TLS operation timed out")
        if wait_read:
            select.select([sock], [], [], remaining)
        else:
            select.select([], [sock], [], remaining)


class TlsServer:
    """Serve handshakes with ``context`` until stopped; one ``Outcome`` per accepted connection."""

    def __init__(self, context: SSL.Context) -> None:
        self.context = context
        self.outcomes: queue.Queue[Outcome] = queue.Queue()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tls-server", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._serve(client)

    def _serve(self, client: socket.socket) -> None:
        client.setblocking(False)
        holder = Holder()
        conn = SSL.Connection(self.context, client)
        conn.set_app_data(holder)
        conn.set_accept_state()
        deadline = time.monotonic() + TIMEOUT
        try:
            _drive(conn, client, conn.do_handshake, deadline)
        except BaseException as exc:  # the outcome is the test's to judge
            self.outcomes.put(Outcome(holder.server_certificate, exc))
            client.close()
            return
        self.outcomes.put(Outcome(holder.server_certificate, None, conn.get_alpn_proto_negotiated()))
        try:  # wait for the client to finish (close_notify or EOF), then close
            _drive(conn, client, lambda: conn.recv(1024), deadline)
        except (SSL.Error, TimeoutError, OSError):
            pass
        client.close()

    def outcome(self) -> Outcome:
        return self.outcomes.get(timeout=TIMEOUT)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(TIMEOUT)
        self._listener.close()


@contextmanager
def tls_server(context: SSL.Context) -> Iterator[TlsServer]:
    server = TlsServer(context)
    try:
        yield server
    finally:
        server.close()


# ------------------------------------------------------------------------------------------------ clients
def python_client_context(
    *, tls12_ciphers: str | None = None, max_version: ssl.TLSVersion | None = None
) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if max_version is not None:
        ctx.maximum_version = max_version
    if tls12_ciphers is not None:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers(tls12_ciphers)
    return ctx


def python_handshake(port: int, sni: str | None, ctx: ssl.SSLContext | None = None) -> x509.Certificate:
    """Connect with Python's ``ssl`` (no SNI when ``sni`` is None) and return the served leaf."""
    ctx = ctx or python_client_context()
    with (
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw,
        ctx.wrap_socket(raw, server_hostname=sni) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


@dataclass
class SClient:
    returncode: int
    output: str
    chain: list[x509.Certificate]


def s_client(port: int, sni: str | None, *extra: str) -> SClient:
    """``openssl s_client -showcerts`` with ``-servername sni`` (``-noservername`` for None), stdin closed."""
    args = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-showcerts", *extra]
    args += ["-noservername"] if sni is None else ["-servername", sni]
    proc = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, timeout=TIMEOUT, check=False)
    output = proc.stdout.decode("utf-8", "replace") + proc.stderr.decode("utf-8", "replace")
    pems = proc.stdout.split(b"-----BEGIN CERTIFICATE-----")[1:]
    chain = [x509.load_pem_x509_certificate(b"-----BEGIN CERTIFICATE-----" + pem) for pem in pems]
    return SClient(proc.returncode, output, chain)


def memory_handshake(
    server_ctx: SSL.Context, sni: bytes | None, alpn: list[bytes] | None = None
) -> tuple[SSL.Connection, SSL.Connection, Holder]:
    """Run a handshake between a pyOpenSSL client and server over memory BIOs; errors propagate."""
    holder = Holder()
    server = SSL.Connection(server_ctx, None)
    server.set_app_data(holder)
    server.set_accept_state()
    client = SSL.Connection(SSL.Context(SSL.TLS_CLIENT_METHOD), None)
    if sni is not None:
        client.set_tlsext_host_name(sni)
    if alpn is not None:
        client.set_alpn_protos(alpn)
    client.set_connect_state()
    for _ in range(20):
        done = 0
        for conn in (client, server):
            try:
                conn.do_handshake()
                done += 1
            except SSL.WantReadError:
                pass
        for src, dst in ((client, server), (server, client)):
            try:
                dst.bio_write(src.bio_read(262144))
            except SSL.WantReadError:
                pass
        if done == 2:
            return client, server, holder
    raise AssertionError("handshake did not complete")


def peer_chain(conn: SSL.Connection) -> list[x509.Certificate]:
    """The chain a pyOpenSSL client was sent, leaf first."""
    return [cert.to_cryptography() for cert in conn.get_peer_cert_chain() or []]


def common_name(cert: x509.Certificate) -> str:
    return str(cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)[0].value)
