"""gRPC on the proxy (issue 16 item 3): Kong's gRPC form of gateway-generated errors, the gRPC route checks of Kong's
runloop, and ``grpc``/``grpcs`` services accepted with Kong's defaults (proxied in ``tests/integration/upstream/h2``).

Peers: ``grpcio`` with the standard health-checking stub (the client a gRPC user runs), ``httpx`` with HTTP/2 for the
exact headers on the wire, ``httpx`` over HTTP/1.1 for Kong's 426. The real gateway process, loopback only.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.fixtures.admin_client import Admin
from tests.fixtures.certs import make_ca
from tests.fixtures.gateway_process import GatewayProcess, make_gateway
from tests.fixtures.ports import free_port
from tests.integration.downstream.upstream import running_upstream

TIMEOUT = 15.0
GRPC = {"content-type": "application/grpc", "te": "trailers"}
#: an empty HealthCheckRequest as one gRPC message (not compressed, length 0)
EMPTY_MESSAGE = b"\x00\x00\x00\x00\x00"


@dataclass
class GrpcSetup:
    gw: GatewayProcess
    h2: int
    h2c: int
    admin: Admin

    def url(self, path: str, tls: bool = True) -> str:
        return f"https://127.0.0.1:{self.h2}{path}" if tls else f"http://127.0.0.1:{self.h2c}{path}"


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GrpcSetup]:
    directory = tmp_path_factory.mktemp("grpc")
    with running_upstream() as upstream_port:
        gw = make_gateway(directory)
        h2_port, h2c_port = free_port(), free_port()
        gw.env["KONG_PROXY_LISTEN"] = (
            f"127.0.0.1:{gw.proxy_port}, 127.0.0.1:{h2c_port} http2, 127.0.0.1:{h2_port} http2 ssl"
        )
        gw.start()
        admin = Admin(gw)
        try:
            admin.post("/services", {"name": "up", "url": f"http://127.0.0.1:{upstream_port}"})
            admin.post("/services/up/routes", {"name": "g", "protocols": ["grpc", "grpcs"], "paths": ["/pkg.G/"]})
            admin.post("/services/up/routes", {"name": "gs", "protocols": ["grpcs"], "paths": ["/pkg.Gs/"]})
            ca_id = admin.post("/ca_certificates", {"cert": make_ca("grpc test client CA").cert_pem})["id"]
            admin.post("/services/up/routes", {"name": "m", "protocols": ["grpcs"], "paths": ["/pkg.Mtls/"]})
            admin.post("/routes/m/plugins", {"name": "mtls-auth", "config": {"ca_certificates": [ca_id]}})
            admin.post("/routes", {"name": "n", "protocols": ["grpc", "grpcs"], "paths": ["/pkg.NoService/"]})
            admin.post("/services", {"name": "dead", "url": f"http://127.0.0.1:{free_port()}"})
            admin.post("/services/dead/routes", {"name": "d", "paths": ["/pkg.Dead/"]})
            setup = GrpcSetup(gw, h2_port, h2c_port, admin)
            _wait_for_routes(setup)
            yield setup
        finally:
            admin.close()
            assert gw.stop() == 0
            errors = gw.error_log.read_text()
            assert "Traceback" not in errors and "[alert]" not in errors, errors


def _wait_for_routes(setup: GrpcSetup) -> None:
    """Admin API writes reach the proxy asynchronously: poll (bounded) until the last route answers."""
    deadline = time.monotonic() + TIMEOUT
    with httpx.Client(http1=False, http2=True, verify=False, timeout=TIMEOUT) as client:
        while True:
            res = client.post(setup.url("/pkg.Dead/M"), headers=GRPC, content=EMPTY_MESSAGE)
            if res.status_code == 502:
                return
            assert time.monotonic() < deadline, res
            time.sleep(0.05)


def _h2(setup: GrpcSetup, path: str, tls: bool = True, headers: dict[str, str] | None = None) -> httpx.Response:
    """One HTTP/2 POST without httpx's default ``Accept: */*`` (gRPC clients send none; Kong's error page reads it)."""
    with httpx.Client(http1=False, http2=True, verify=False, timeout=TIMEOUT) as client:
        del client.headers["accept"]
        res = client.post(setup.url(path, tls), headers=headers if headers is not None else GRPC, content=EMPTY_MESSAGE)
    assert res.http_version == "HTTP/2"
    return res


def test_unknown_route_is_kongs_grpc_not_found(setup: GrpcSetup) -> None:
    res = _h2(setup, "/grpc.health.v1.Health/Check")
    # kong.response.error(404) on a gRPC request: HTTP status kept, no body, the code's name as grpc-message
    assert res.status_code == 404
    assert res.headers["content-type"] == "application/grpc"
    assert res.headers["grpc-status"] == "5" and res.headers["grpc-message"] == "NotFound"
    assert res.headers["content-length"] == "0" and res.content == b""
    assert "x-kong-request-id" in res.headers


def test_grpcio_health_check_to_unknown_route_fails_with_kongs_status(setup: GrpcSetup) -> None:
    pem = ssl.get_server_certificate(("127.0.0.1", setup.h2)).encode()
    credentials = grpc.ssl_channel_credentials(root_certificates=pem)
    options = (("grpc.ssl_target_name_override", "localhost"),)
    with grpc.secure_channel(f"127.0.0.1:{setup.h2}", credentials, options=options) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        with pytest.raises(grpc.RpcError) as failed:
            stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=TIMEOUT)
    error = failed.value
    assert isinstance(error, grpc.Call)
    # grpc-core trusts grpc-status over a non-200 :status when both are present
    assert error.code() == grpc.StatusCode.NOT_FOUND, error
    assert error.details() == "NotFound"


def test_grpcio_over_h2c_prior_knowledge_gets_the_same_error(setup: GrpcSetup) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{setup.h2c}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        with pytest.raises(grpc.RpcError) as failed:
            stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=TIMEOUT)
    error = failed.value
    assert isinstance(error, grpc.Call)
    assert error.code() == grpc.StatusCode.NOT_FOUND, error


def test_route_without_service_is_unavailable(setup: GrpcSetup) -> None:
    res = _h2(setup, "/pkg.NoService/M", tls=False)
    assert res.status_code == 503
    assert res.headers["content-type"] == "application/grpc"
    assert (res.headers["grpc-status"], res.headers["grpc-message"]) == ("14", "Unavailable")


def test_access_log_has_the_http_status_of_a_grpc_error(setup: GrpcSetup) -> None:
    marker = "/grpc.unrouted.Marker/Call"
    assert _h2(setup, marker).status_code == 404
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        log = setup.gw.access_log
        lines = [line for line in log.read_text().splitlines() if marker in line] if log.exists() else []
        if lines:
            assert f'"POST {marker} HTTP/2.0" 404 ' in lines[0]
            return
        time.sleep(0.05)
    raise AssertionError("the access line never came")


def test_upstream_failure_is_error_page_in_grpc_form(setup: GrpcSetup) -> None:
    res = _h2(setup, "/pkg.Dead/Method")
    # nginx error_page 502 -> Kong's error handler with {message = ...}: 502 has no entry, 5xx maps to 13
    assert res.status_code == 502
    assert res.headers["content-type"] == "application/grpc"
    assert res.headers["grpc-status"] == "13"
    assert res.headers["grpc-message"] == "An invalid response was received from the upstream server"
    assert res.content == b""


def test_grpcio_sees_the_upstream_failure_as_internal(setup: GrpcSetup) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{setup.h2c}") as channel:
        call = channel.unary_unary("/pkg.Dead/Method", request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.RpcError) as failed:
            call(b"", timeout=TIMEOUT)
    error = failed.value
    assert isinstance(error, grpc.Call)
    assert error.code() == grpc.StatusCode.INTERNAL, error
    assert error.details() == "An invalid response was received from the upstream server"


def test_plugin_exit_on_grpc_request_is_mapped(setup: GrpcSetup) -> None:
    # mtls-auth's kong.response.exit(401, {message = ...}): 401 -> 16, the message as grpc-message
    res = _h2(setup, "/pkg.Mtls/M")
    assert res.status_code == 401
    assert res.headers["content-type"] == "application/grpc"
    assert res.headers["grpc-status"] == "16"
    assert res.headers["grpc-message"] == "No required TLS certificate was sent"
    assert res.content == b""


def test_grpc_accept_on_http1_error_page_is_kongs_json_message(setup: GrpcSetup) -> None:
    with httpx.Client(timeout=TIMEOUT) as client:
        res = client.get(
            f"http://127.0.0.1:{setup.gw.proxy_port}/pkg.Dead/Method", headers={"accept": "application/grpc"}
        )
    assert res.status_code == 502
    assert res.headers["content-type"].startswith("application/json")
    assert res.json() == {"message": "An invalid response was received from the upstream server"}
    assert "grpc-status" not in res.headers


def test_grpc_route_over_http1_keeps_kongs_426(setup: GrpcSetup) -> None:
    with httpx.Client(timeout=TIMEOUT) as client:
        res = client.post(f"http://127.0.0.1:{setup.gw.proxy_port}/pkg.G/M", headers=GRPC, content=EMPTY_MESSAGE)
    assert res.status_code == 426
    assert res.json()["message"] == "Please use HTTP2 protocol"
    assert res.headers["upgrade"] == "HTTP/2"


def test_grpc_route_over_h2_without_grpc_content_type_is_415(setup: GrpcSetup) -> None:
    res = _h2(setup, "/pkg.G/M", headers={"content-type": "application/json"})
    assert res.status_code == 415
    assert res.json()["message"] == "Non-gRPC request matched gRPC route"


def test_grpc_route_over_h2_is_proxied_not_refused(setup: GrpcSetup) -> None:
    res = _h2(setup, "/pkg.G/M")
    # the route's service is http: proxied over HTTP/1.1 as Kong's proxy_pass would (the threaded upstream echoes)
    assert res.status_code == 200, res.text
    assert res.json()["request_line"] == "POST /pkg.G/M HTTP/1.1"
    assert dict(res.json()["headers"])["content-type"] == "application/grpc"


def test_grpcs_only_route_over_h2c_answers_grpc_status_1(setup: GrpcSetup) -> None:
    res = _h2(setup, "/pkg.Gs/M", tls=False)
    assert res.status_code == 200
    assert res.headers["content-type"] == "application/grpc"
    assert res.headers["grpc-status"] == "1"
    assert res.headers["grpc-message"] == "gRPC request matched gRPCs route"
    assert _h2(setup, "/pkg.Gs/M").status_code == 200 and "grpc-status" not in _h2(setup, "/pkg.Gs/M").headers


@pytest.mark.parametrize("protocol", ["grpc", "grpcs"])
def test_grpc_services_are_accepted_with_kongs_defaults(setup: GrpcSetup, protocol: str) -> None:
    created = setup.admin.post("/services", {"name": f"s-{protocol}", "protocol": protocol, "host": "127.0.0.1"})
    assert (created["protocol"], created["port"], created["path"]) == (protocol, 80, None)
    assert setup.admin.get(f"/services/s-{protocol}")["protocol"] == protocol
    res = setup.admin.http.post("/services", json={"name": f"p-{protocol}", "url": f"{protocol}://127.0.0.1:1/path"})
    assert res.status_code == 400, res.text
    assert res.json()["fields"]["path"] == "value must be null"
