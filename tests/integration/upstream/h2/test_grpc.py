"""gRPC to the upstream over HTTP/2 (issue 16 item 3): ``grpc``/``grpcs`` services proxied to a real grpcio server.

The peers are the ones a gRPC user runs: grpcio's client (the health-checking stub, and raw-bytes calls) in front of
the gateway, a grpcio server behind it (``grpc_server``), certificates from the tests' one factory. The gateway is the
real process on loopback; every wait is bounded.
"""

from __future__ import annotations

import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import httpx
import pytest
from cryptography import x509
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.fixtures.admin_client import Admin
from tests.fixtures.certs import make_ca, make_cert
from tests.fixtures.gateway_process import GatewayProcess, make_gateway
from tests.fixtures.metrics import scrape
from tests.fixtures.ports import free_port
from tests.integration.upstream.h2.grpc_server import (
    FAIL_MESSAGE,
    STREAM_COUNT,
    running_grpc_server,
    running_http1_tls,
)

TIMEOUT = 15.0
#: the route each test reaches, by a request header (gRPC metadata) so one method can go to several services
ROUTE_HEADER = "x-route"


@dataclass
class Setup:
    gw: GatewayProcess
    h2: int
    h2c: int
    admin: Admin
    mtls_port: int
    server_ca_id: str
    cert_id: str
    slow_started: threading.Event
    slow_cancelled: threading.Event

    def tls_channel(self) -> grpc.Channel:
        pem = ssl.get_server_certificate(("127.0.0.1", self.h2)).encode()
        credentials = grpc.ssl_channel_credentials(root_certificates=pem)
        options = (("grpc.ssl_target_name_override", "localhost"),)
        return grpc.secure_channel(f"127.0.0.1:{self.h2}", credentials, options=options)

    def plain_channel(self) -> grpc.Channel:
        return grpc.insecure_channel(f"127.0.0.1:{self.h2c}")

    def errors(self) -> str:
        return self.gw.error_log.read_text() if self.gw.error_log.exists() else ""


def _route(admin: Admin, service: dict[str, object], name: str) -> None:
    admin.post("/services", {"name": name, "retries": 0, **service})
    route = {"name": name, "protocols": ["grpc", "grpcs"], "headers": {ROUTE_HEADER: [name]}}
    admin.post(f"/services/{name}/routes", route)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    server_ca, other_ca, client_ca = make_ca("gRPC server CA"), make_ca("Another CA"), make_ca("gRPC client CA")
    server_cert = make_cert("grpc.test", issuer=server_ca, sans=[x509.DNSName("127.0.0.1")])
    client_cert = make_cert("gateway client", issuer=client_ca)
    with running_grpc_server(server_cert, client_ca) as ports, running_http1_tls(server_cert) as http1_port:
        gw = make_gateway(tmp_path_factory.mktemp("grpc-upstream"))
        h2_port, h2c_port = free_port(), free_port()
        gw.env["KONG_PROXY_LISTEN"] = f"127.0.0.1:{h2c_port} http2, 127.0.0.1:{h2_port} http2 ssl"
        gw.env["KONG_ALLOW_DEBUG_HEADER"] = "on"
        gw.start()
        admin = Admin(gw)
        try:
            server_ca_id = admin.post("/ca_certificates", {"cert": server_ca.cert_pem})["id"]
            other_ca_id = admin.post("/ca_certificates", {"cert": other_ca.cert_pem})["id"]
            cert_id = admin.post("/certificates", {"cert": client_cert.chain_pem, "key": client_cert.key_pem})["id"]
            verified = {"protocol": "grpcs", "host": "127.0.0.1", "tls_verify": True, "ca_certificates": [server_ca_id]}
            _route(admin, {**verified, "port": ports.tls}, "verified")
            _route(admin, {**verified, "port": ports.tls, "ca_certificates": [other_ca_id]}, "wrong-ca")
            _route(admin, {**verified, "port": ports.tls, "tls_verify_depth": 2}, "deeper")
            _route(admin, {**verified, "port": ports.tls, "tls_verify_depth": 3}, "burst")
            _route(admin, {**verified, "port": ports.mtls, "client_certificate": {"id": cert_id}}, "mtls")
            _route(admin, {**verified, "port": ports.mtls}, "mtls-no-cert")
            # the HTTP/1.1 route of a counted service (the prometheus plugin), before "plain" so that it is in place
            # once "plain" answers
            admin.post("/services", {"name": "counted", "url": f"grpc://127.0.0.1:{ports.plain}"})
            counted = {"name": "counted", "protocols": ["http"], "paths": ["/test.Echo/"]}
            admin.post("/services/counted/routes", {**counted, "headers": {ROUTE_HEADER: ["counted"]}})
            metrics = {"status_code_metrics": True, "latency_metrics": True, "bandwidth_metrics": True}
            admin.post("/services/counted/plugins", {"name": "prometheus", "config": metrics})
            _route(admin, {"url": f"grpc://127.0.0.1:{ports.plain}"}, "plain")
            admin.post("/services/plain/routes", {"name": "h1", "protocols": ["http"], "paths": ["/test.Echo/"]})
            _route(admin, {"url": f"grpc://127.0.0.1:{ports.plain}", "read_timeout": 300}, "impatient")
            _route(admin, {"url": f"grpc://127.0.0.1:{ports.plain}"}, "shared")
            _route(admin, {**verified, "port": http1_port}, "http1-only")
            setup = Setup(
                gw,
                h2_port,
                h2c_port,
                admin,
                ports.mtls,
                server_ca_id,
                cert_id,
                ports.slow.started,
                ports.slow.cancelled,
            )
            _wait_for_routes(setup)
            yield setup
        finally:
            admin.close()
            assert gw.stop() == 0
            errors = gw.error_log.read_text()
            assert "Traceback" not in errors and "[alert]" not in errors, errors


def _wait_for_routes(setup: Setup) -> None:
    """Admin API writes reach the proxy asynchronously: poll (bounded) until the last route answers."""
    deadline = time.monotonic() + TIMEOUT
    with setup.plain_channel() as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                stub.Check(health_pb2.HealthCheckRequest(), metadata=((ROUTE_HEADER, "plain"),), timeout=TIMEOUT)
                return
            except grpc.RpcError as exc:
                assert time.monotonic() < deadline, exc
                time.sleep(0.05)


def _check(channel: grpc.Channel, route: str) -> health_pb2.HealthCheckResponse:
    stub = health_pb2_grpc.HealthStub(channel)
    return stub.Check(health_pb2.HealthCheckRequest(service=""), metadata=((ROUTE_HEADER, route),), timeout=TIMEOUT)


def _failed_check(channel: grpc.Channel, route: str) -> grpc.Call:
    with pytest.raises(grpc.RpcError) as failed:
        _check(channel, route)
    error = failed.value
    assert isinstance(error, grpc.Call)
    return error


def _wait_for_log(setup: Setup, pattern: str) -> str:
    deadline = time.monotonic() + TIMEOUT
    while True:
        found = re.search(pattern, setup.errors())
        if found:
            return found.group(0)
        assert time.monotonic() < deadline, setup.errors()
        time.sleep(0.05)


def test_health_check_through_grpcs_service_with_tls_verify_against_its_own_ca(setup: Setup) -> None:
    with setup.tls_channel() as channel:
        assert _check(channel, "verified").status == health_pb2.HealthCheckResponse.SERVING


def test_health_check_twice_on_one_channel_reuses_the_upstream_connection(setup: Setup) -> None:
    with setup.tls_channel() as channel:
        for _ in range(3):
            assert _check(channel, "verified").status == health_pb2.HealthCheckResponse.SERVING


def test_a_ca_that_did_not_sign_the_server_fails_with_kongs_502_and_log_line(setup: Setup) -> None:
    with setup.tls_channel() as channel:
        error = _failed_check(channel, "wrong-ca")
    # Kong's error handler for 502 in gRPC form: 5xx -> grpc-status 13 with the error page's message
    assert error.code() == grpc.StatusCode.INTERNAL, error
    assert error.details() == "An invalid response was received from the upstream server"
    line = _wait_for_log(setup, r"\[error\] .*upstream SSL certificate verify error: .*")
    assert "(21:unable to verify the first certificate) while SSL handshaking to upstream" in line, line
    # grpc_pass has no URI: nginx's upstream is the peer alone
    assert re.search(r'request: "POST /grpc.health.v1.Health/Check HTTP/2.0", upstream: "grpcs://127.0.0.1:\d+",', line)


def test_upstream_requiring_a_client_certificate_gets_the_services_one(setup: Setup) -> None:
    with setup.plain_channel() as channel:
        assert _check(channel, "mtls").status == health_pb2.HealthCheckResponse.SERVING


def test_upstream_requiring_a_client_certificate_refuses_a_service_without_one(setup: Setup) -> None:
    with setup.plain_channel() as channel:
        error = _failed_check(channel, "mtls-no-cert")
    assert error.code() == grpc.StatusCode.INTERNAL, error
    assert error.details() == "An invalid response was received from the upstream server"
    # TLS 1.3: the server refuses the missing certificate after the client's Finished, so the try fails on the
    # established connection (a reset, a broken pipe or the server's alert, by timing), before any response head
    pattern = rf'\[error\] .* while (reading response header from|SSL handshaking to) upstream, .*"grpcs://127.0.0.1:{setup.mtls_port}"'
    _wait_for_log(setup, pattern)


def test_plain_grpc_service_is_h2c_prior_knowledge(setup: Setup) -> None:
    with setup.tls_channel() as channel:
        assert _check(channel, "plain").status == health_pb2.HealthCheckResponse.SERVING


def test_status_and_message_in_trailers_reach_the_client(setup: Setup) -> None:
    with setup.plain_channel() as channel:
        call = channel.unary_unary("/test.Echo/Fail")
        with pytest.raises(grpc.RpcError) as failed:
            call(b"x", metadata=((ROUTE_HEADER, "plain"),), timeout=TIMEOUT)
    error = failed.value
    assert isinstance(error, grpc.Call)
    assert error.code() == grpc.StatusCode.NOT_FOUND, error
    assert error.details() == FAIL_MESSAGE


def test_unary_echo_carries_the_body_both_ways(setup: Setup) -> None:
    payload = bytes(range(256)) * 1024  # 256 KiB: more than one flow-control window each way
    with setup.tls_channel() as channel:
        call = channel.unary_unary("/test.Echo/Echo")
        assert call(payload, metadata=((ROUTE_HEADER, "verified"),), timeout=TIMEOUT) == b"echo:" + payload


def test_server_streaming_call_relays_every_message(setup: Setup) -> None:
    with setup.tls_channel() as channel:
        call = channel.unary_stream("/test.Echo/Stream")
        replies = list(call(b"req", metadata=((ROUTE_HEADER, "verified"),), timeout=TIMEOUT))
    assert replies == [b"part %d of req" % i for i in range(STREAM_COUNT)]


def test_concurrent_calls_share_one_upstream_connection(setup: Setup) -> None:
    with setup.plain_channel() as channel:
        assert _check(channel, "shared").status == health_pb2.HealthCheckResponse.SERVING  # opens the connection
        call = channel.unary_stream("/test.Echo/Stream")
        calls = [call(b"%d" % i, metadata=((ROUTE_HEADER, "shared"),), timeout=TIMEOUT) for i in range(8)]
        for i, replies in enumerate(calls):
            assert list(replies) == [b"part %d of %d" % (n, i) for n in range(STREAM_COUNT)]
    page = scrape(f"{setup.gw.admin_url}/metrics")
    # "shared" and "plain" reach the same grpc peer: same pool key, so the connection the fixture's first call opened
    # (through "plain") carries every stream of this test, the eight concurrent ones included
    assert page.value("kong_upstream_connections_total", service="shared", reused="false") is None
    assert page.value("kong_upstream_connections_total", service="shared", reused="true") == 9.0


def test_read_timeout_is_kongs_504_in_grpc_form(setup: Setup) -> None:
    setup.slow_cancelled.clear()
    with setup.plain_channel() as channel:
        call = channel.unary_unary("/test.Echo/Slow")
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as failed:
            call(b"", metadata=((ROUTE_HEADER, "impatient"),), timeout=TIMEOUT)
        assert time.monotonic() - started < 3.0
        # the stream was reset (the server saw its call end), the connection stays good for the next call
        assert setup.slow_cancelled.wait(TIMEOUT)
        assert _check(channel, "impatient").status == health_pb2.HealthCheckResponse.SERVING
    error = failed.value
    assert isinstance(error, grpc.Call)
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED, error  # 504 -> grpc-status 4
    assert error.details() == "The upstream server is timing out"
    _wait_for_log(setup, r"\[error\] .*upstream timed out \(110: Connection timed out\) while reading response header")


def test_a_client_cancelling_its_call_resets_the_upstream_stream(setup: Setup) -> None:
    setup.slow_started.clear()
    setup.slow_cancelled.clear()
    with setup.plain_channel() as channel:
        call = channel.unary_unary("/test.Echo/Slow")
        future = call.future(b"", metadata=((ROUTE_HEADER, "plain"),), timeout=TIMEOUT)
        assert setup.slow_started.wait(TIMEOUT)  # the request reached the upstream through the gateway
        assert future.cancel()
        # the client's RST_STREAM -> the exchange aborts its upstream stream -> RST_STREAM(CANCEL) to the server
        assert setup.slow_cancelled.wait(TIMEOUT)
        assert _check(channel, "plain").status == health_pb2.HealthCheckResponse.SERVING


def test_upstream_that_does_not_pick_h2_in_alpn_fails_with_502(setup: Setup) -> None:
    with setup.plain_channel() as channel:
        error = _failed_check(channel, "http1-only")
    assert error.code() == grpc.StatusCode.INTERNAL, error
    line = _wait_for_log(setup, r"\[error\] .*did not negotiate ALPN.*")
    # the client offers only h2, the server knows only http/1.1: no overlap, no protocol
    assert 'upstream SSL did not negotiate ALPN "h2" (no protocol selected) while SSL handshaking to upstream' in line


def _debug_metadata(channel: grpc.Channel, route: str) -> dict[str, str]:
    stub = health_pb2_grpc.HealthStub(channel)
    metadata = ((ROUTE_HEADER, route), ("kong-debug", "1"))
    reply, call = stub.Check.with_call(health_pb2.HealthCheckRequest(), metadata=metadata, timeout=TIMEOUT)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    return {key: str(value) for key, value in call.initial_metadata()}


def test_kong_debug_shows_layers_3_and_4_of_a_grpcs_service(setup: Setup) -> None:
    with setup.plain_channel() as channel:
        headers = _debug_metadata(channel, "mtls")
    assert headers["x-gateway-tls-upstream-cert"].startswith(f"from=service; certificate={setup.cert_id}; subject=")
    trust = headers["x-gateway-tls-upstream-trust"]
    expected = f"verify=on; verify_from=service; trust=ca_certificates:{setup.server_ca_id}; trust_from=service; "
    assert trust.startswith(expected), trust
    assert "sni=none; host_checked=127.0.0.1; result=ok;" in trust, trust


def test_another_tls_identity_to_the_same_peer_gets_its_own_connection(setup: Setup) -> None:
    with setup.plain_channel() as channel:
        for _ in range(2):
            assert _check(channel, "verified").status == health_pb2.HealthCheckResponse.SERVING
            assert _check(channel, "deeper").status == health_pb2.HealthCheckResponse.SERVING
    page = scrape(f"{setup.gw.admin_url}/metrics")
    # same peer, same host, another verify depth: another pool key, so "deeper" never rides on "verified"'s connection
    assert page.value("kong_upstream_connections_total", service="deeper", reused="false") == 1.0
    assert page.value("kong_upstream_connections_total", service="deeper", reused="true") == 1.0


def test_a_burst_to_a_new_peer_opens_one_connection(setup: Setup) -> None:
    with setup.plain_channel() as channel:
        call = channel.unary_unary("/test.Echo/Echo")
        futures = [call.future(b"%d" % i, metadata=((ROUTE_HEADER, "burst"),), timeout=TIMEOUT) for i in range(8)]
        assert [f.result() for f in futures] == [b"echo:%d" % i for i in range(8)]
    page = scrape(f"{setup.gw.admin_url}/metrics")
    # the calls that came while the first one's connection was being opened waited for it instead of opening theirs
    assert page.value("kong_upstream_connections_total", service="burst", reused="false") == 1.0
    assert page.value("kong_upstream_connections_total", service="burst", reused="true") == 7.0


def test_http1_client_on_an_http_route_to_a_grpc_service_gets_the_body_without_trailers(setup: Setup) -> None:
    # the route strips its path (an http route's default), but grpc_pass sends the client's target as it came
    message = b"\x00\x00\x00\x00\x03abc"  # one uncompressed gRPC message
    with httpx.Client(timeout=TIMEOUT) as client:
        headers = {"content-type": "application/grpc", "te": "trailers"}
        res = client.post(f"http://127.0.0.1:{setup.h2c}/test.Echo/Echo", headers=headers, content=message)
    assert res.http_version == "HTTP/1.1"
    assert res.status_code == 200 and res.headers["content-type"] == "application/grpc"
    assert res.content == b"\x00\x00\x00\x00\x08echo:abc"
    assert "grpc-status" not in res.headers  # it came as an HTTP/2 trailer: an HTTP/1.1 client gets none here


def test_a_response_from_an_http2_upstream_is_counted_as_the_services_with_its_bytes(setup: Setup) -> None:
    # the log phase's facts for an HTTP/2 upstream: its response head's arrival marks the response as the service's
    # (prometheus' source="service"), and what the client received counts in full (head and body)
    message = b"\x00\x00\x00\x00\x03abc"
    request = (
        b"POST /test.Echo/Echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/grpc\r\nTE: trailers\r\n"
        b"%b: counted\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%b"
    ) % (ROUTE_HEADER.encode(), len(message), message)
    with socket.create_connection(("127.0.0.1", setup.h2c), timeout=TIMEOUT) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    assert received.startswith(b"HTTP/1.1 200 ")
    page = scrape(f"{setup.gw.admin_url}/metrics")
    assert page.value("kong_http_requests_total", service="counted", code="200", source="service") == 1.0
    assert page.value("kong_http_requests_total", service="counted", code="200", source="kong") is None
    assert page.value("kong_upstream_latency_ms_count", service="counted") == 1.0
    head, chunked = received.split(b"\r\n\r\n", 1)
    assert b"Transfer-Encoding: chunked" in head
    body = _dechunk(chunked)
    assert body == b"\x00\x00\x00\x00\x08echo:abc"
    # head and body written (the chunk framing not counted: docs/compatibility.md, "sizes")
    assert page.value("kong_bandwidth_bytes", service="counted", direction="egress") == len(head) + 4 + len(body)


def _dechunk(data: bytes) -> bytes:
    body = b""
    while True:
        size_line, data = data.split(b"\r\n", 1)
        size = int(size_line, 16)
        if size == 0:
            return body
        body, data = body + data[:size], data[size + 2 :]
