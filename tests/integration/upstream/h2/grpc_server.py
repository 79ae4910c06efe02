"""A real gRPC server for the HTTP/2 upstream tests: grpcio with the standard health servicer and a generic handler
(raw bytes in and out, so no protoc step), on loopback ports with the credentials each test needs.

Methods of ``test.Echo``: ``Fail`` aborts with ``NOT_FOUND`` and a message (the status travels in trailers),
``Stream`` answers ``STREAM_COUNT`` messages (server streaming), ``Echo`` returns what it got with ``echo:``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from tests.fixtures.certs import Issued

__all__ = ["FAIL_MESSAGE", "STREAM_COUNT", "GrpcPorts", "running_grpc_server"]

FAIL_MESSAGE = "no such thing here"
STREAM_COUNT = 5


def _fail(request: bytes, context: grpc.ServicerContext) -> bytes:
    context.abort(grpc.StatusCode.NOT_FOUND, FAIL_MESSAGE)
    raise AssertionError("abort returns only by raising")


def _stream(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
    for i in range(STREAM_COUNT):
        yield b"part %d of %b" % (i, request)


def _echo(request: bytes, context: grpc.ServicerContext) -> bytes:
    return b"echo:" + request


@dataclass
class GrpcPorts:
    #: TLS, server certificate only
    tls: int
    #: TLS, a client certificate signed by the client CA required
    mtls: int
    #: h2c (prior knowledge)
    plain: int


@contextlib.contextmanager
def running_grpc_server(server_cert: Issued, client_ca: Issued) -> Iterator[GrpcPorts]:
    """One grpcio server listening on three loopback ports (see ``GrpcPorts``); stopped on exit."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    servicer = health.HealthServicer()
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    handlers = {
        "Fail": grpc.unary_unary_rpc_method_handler(_fail),
        "Stream": grpc.unary_stream_rpc_method_handler(_stream),
        "Echo": grpc.unary_unary_rpc_method_handler(_echo),
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
        yield GrpcPorts(tls, mtls, plain)
    finally:
        server.stop(grace=None).wait(10)
