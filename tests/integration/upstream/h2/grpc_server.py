"""A real gRPC server for the HTTP/2 upstream tests: grpcio with the standard health servicer and a generic handler
(raw bytes in and out, so no protoc step), on loopback ports with the credentials each test needs.

Methods of ``test.Echo``: ``Fail`` aborts with ``NOT_FOUND`` and a message (the status travels in trailers),
``Stream`` answers ``STREAM_COUNT`` messages (server streaming), ``Echo`` returns what it got with ``echo:``, ``Slow``
answers after ``SLOW_SECONDS`` (or when the call is cancelled).

``running_http1_tls`` is a TLS server that offers only ``http/1.1`` in ALPN: a ``grpcs`` service pointed at it must
fail before sending an HTTP/2 frame.
"""

from __future__ import annotations

import contextlib
import socketserver
import ssl
import tempfile
import threading
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from tests.fixtures.certs import Issued

__all__ = ["FAIL_MESSAGE", "SLOW_SECONDS", "STREAM_COUNT", "GrpcPorts", "running_grpc_server", "running_http1_tls"]

FAIL_MESSAGE = "no such thing here"
STREAM_COUNT = 5
SLOW_SECONDS = 5.0


def _fail(request: bytes, context: grpc.ServicerContext) -> bytes:
    context.abort(grpc.StatusCode.NOT_FOUND, FAIL_MESSAGE)
    raise AssertionError("abort returns only by raising")


def _stream(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
    for i in range(STREAM_COUNT):
        yield b"part %d of %b" % (i, request)


def _echo(request: bytes, context: grpc.ServicerContext) -> bytes:
    return b"echo:" + request


class _Slow:
    """``Slow``: answers after ``SLOW_SECONDS`` unless the call ends first (the gateway reset the stream)."""

    def __init__(self) -> None:
        #: set when a call arrived, and when a call ended before its answer (cancelled by the peer)
        self.started = threading.Event()
        self.cancelled = threading.Event()

    def __call__(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        done = threading.Event()
        context.add_callback(done.set)
        self.started.set()
        if done.wait(SLOW_SECONDS):
            self.cancelled.set()
        return b"late"


@dataclass
class GrpcPorts:
    #: TLS, server certificate only
    tls: int
    #: TLS, a client certificate signed by the client CA required
    mtls: int
    #: h2c (prior knowledge)
    plain: int
    #: the ``Slow`` method's events
    slow: _Slow


@contextlib.contextmanager
def running_grpc_server(server_cert: Issued, client_ca: Issued) -> Iterator[GrpcPorts]:
    """One grpcio server listening on three loopback ports (see ``GrpcPorts``); stopped on exit."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    servicer = health.HealthServicer()
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    slow = _Slow()
    handlers = {
        "Fail": grpc.unary_unary_rpc_method_handler(_fail),
        "Stream": grpc.unary_stream_rpc_method_handler(_stream),
        "Echo": grpc.unary_unary_rpc_method_handler(_echo),
        "Slow": grpc.unary_unary_rpc_method_handler(slow),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Echo", handlers),))
    pair = [(server_cert.key_pem.encode(), server_cert.chain_pem.encode())]
    tls = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials(pair))
    mtls_credentials = grpc.ssl_server_credentials(
        pair, root_certificates=client_ca.cert_pem.encode(), require_client_auth=True
    )
    mtls = server.add_secure_port("127.0.0.1:0", mtls_credentials)
    plain = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield GrpcPorts(tls, mtls, plain, slow)
    finally:
        server.stop(grace=None).wait(10)


class _Http1Handler(socketserver.BaseRequestHandler):
    """Completes the handshake (ALPN ``http/1.1``) and reads until the client goes."""

    def handle(self) -> None:
        context: ssl.SSLContext = self.server.context  # type: ignore[attr-defined]
        try:
            with context.wrap_socket(self.request, server_side=True) as tls:
                while tls.recv(65536):
                    pass
        except (OSError, ssl.SSLError):
            pass


@contextlib.contextmanager
def running_http1_tls(server_cert: Issued) -> Iterator[int]:
    """A loopback TLS server offering only ``http/1.1`` in ALPN; yields its port."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as directory:
        chain, key = Path(directory, "chain.pem"), Path(directory, "key.pem")
        chain.write_text(server_cert.chain_pem)
        key.write_text(server_cert.key_pem)
        context.load_cert_chain(chain, key)
    context.set_alpn_protocols(["http/1.1"])
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Http1Handler)
    server.daemon_threads = True
    server.context = context  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
