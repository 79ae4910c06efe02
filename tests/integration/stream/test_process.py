"""The stream subsystem in the real ``gateway`` process: ``KONG_STREAM_LISTEN``, routes written through the Admin API,
worker processes, ``tcp`` active health checks, and what happens to stream routes without ``stream_listen``."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.admin_client import Admin
from tests.fixtures.gateway_process import GatewayProcess, make_gateway
from tests.fixtures.nginx import NginxRunner, NginxServer, nginx  # noqa: F401  (fixture)
from tests.fixtures.ports import closed_port, free_port
from tests.integration.stream.pki import StreamPki

pytestmark = pytest.mark.timeout(90)

#: a stream upstream answering one line per connection
ALIVE = 'server { listen 127.0.0.1:{port}; return "alive\\n"; }'


def read_all(port: int, data: bytes = b"") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        if data:
            sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def s_client_msg(port: int, servername: str, until_closed: bool = True) -> str:
    """``openssl s_client -msg``: reading until the server closes, or leaving after the handshake."""
    args = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", servername, "-msg"]
    args += ["-ign_eof"] if until_closed else []
    proc = subprocess.run(args, input=b"", capture_output=True, timeout=10)
    return proc.stdout.decode("latin-1") + proc.stderr.decode("latin-1")


@pytest.fixture
def stream_gateway(tmp_path: Path) -> Iterator[tuple[GatewayProcess, int, int]]:
    plain, secure = free_port(), free_port()
    env = {"KONG_STREAM_LISTEN": f"127.0.0.1:{plain}, 127.0.0.1:{secure} ssl"}
    gw = make_gateway(tmp_path, env, ssl=True).start()
    try:
        yield gw, plain, secure
    finally:
        gw.stop()


def test_stream_routes_written_through_the_admin_api_are_served(
    stream_gateway: tuple[GatewayProcess, int, int],
    nginx: NginxRunner,  # noqa: F811
    stream_pki: StreamPki,
) -> None:
    gw, plain, secure = stream_gateway
    upstream = nginx.start("", stream=ALIVE)
    admin = Admin(gw)
    try:
        svc = admin.post("/services", {"name": "alive", "url": f"tcp://127.0.0.1:{upstream.port}"})
        admin.post(f"/services/{svc['id']}/routes", {"protocols": ["tcp"], "destinations": [{"port": plain}]})
        admin.post(
            "/certificates",
            {"cert": stream_pki.exact.chain_pem, "key": stream_pki.exact.key_pem, "snis": ["stream.test"]},
        )
        admin.post(f"/services/{svc['id']}/routes", {"protocols": ["tls"], "snis": ["stream.test"]})
        assert read_all(plain) == b"alive\n"
        out = s_client_msg(secure, "stream.test")
        assert "alive" in out and "depth=0 CN = stream-exact" in out
    finally:
        admin.close()
    assert "stream listening on 127.0.0.1:" in gw.error_log.read_text()


def test_mtls_auth_does_not_apply_to_stream_routes(
    stream_gateway: tuple[GatewayProcess, int, int],
    nginx: NginxRunner,  # noqa: F811
    stream_pki: StreamPki,
) -> None:
    """A global mtls-auth asks HTTPS clients for a certificate; the stream listener never does (Kong's plugin has no
    stream protocols and its stream server block no ``ssl_verify_client``)."""
    gw, _, secure = stream_gateway
    upstream = nginx.start("", stream=ALIVE)
    admin = Admin(gw)
    try:
        ca = admin.post("/ca_certificates", {"cert": stream_pki.root.cert_pem})
        admin.post("/plugins", {"name": "mtls-auth", "config": {"ca_certificates": [ca["id"]]}})
        admin.post(
            "/certificates",
            {"cert": stream_pki.exact.chain_pem, "key": stream_pki.exact.key_pem, "snis": ["stream.test"]},
        )
        svc = admin.post("/services", {"name": "alive", "url": f"tcp://127.0.0.1:{upstream.port}"})
        admin.post(f"/services/{svc['id']}/routes", {"protocols": ["tls"], "snis": ["stream.test"]})
    finally:
        admin.close()
    assert gw.proxy_ssl_port is not None
    https = s_client_msg(gw.proxy_ssl_port, "stream.test", until_closed=False)
    stream = s_client_msg(secure, "stream.test")
    assert "CertificateRequest" in https
    assert "CertificateRequest" not in stream and "alive" in stream


def test_without_stream_listen_stream_routes_are_stored_and_not_served(tmp_path: Path) -> None:
    """As in Kong: the Admin API accepts them (a node without stream listeners shares the configuration), no router
    is built for them and nothing listens."""
    gw = make_gateway(tmp_path).start()
    admin = Admin(gw)
    try:
        svc = admin.post("/services", {"name": "tcp", "url": "tcp://127.0.0.1:9"})
        created = admin.post(f"/services/{svc['id']}/routes", {"protocols": ["tcp"], "destinations": [{"port": 1}]})
        assert admin.get(f"/routes/{created['id']}")["protocols"] == ["tcp"]
        refused = admin.http.post("/routes", json={"protocols": ["udp"], "destinations": [{"port": 53}]})
        assert refused.status_code == 400 and "'udp' routes are not supported" in refused.text
    finally:
        admin.close()
        gw.stop()
    assert "stream listening" not in gw.error_log.read_text()


def test_stream_listeners_in_worker_processes(tmp_path: Path, nginx: NginxRunner, stream_pki: StreamPki) -> None:  # noqa: F811
    """The master binds the stream sockets of every worker slot, after the proxy ones; each worker serves both."""
    upstream = nginx.start("", stream=ALIVE)
    plain, secure = free_port(), free_port()
    env = {"KONG_STREAM_LISTEN": f"127.0.0.1:{plain}, 127.0.0.1:{secure} ssl", "KONG_WORKER_PROCESSES": "2"}
    gw = make_gateway(tmp_path, env, ssl=True).start()
    admin = Admin(gw)
    try:
        svc = admin.post("/services", {"name": "alive", "url": f"tcp://127.0.0.1:{upstream.port}"})
        admin.post(f"/services/{svc['id']}/routes", {"protocols": ["tcp"], "destinations": [{"port": plain}]})
        admin.post(
            "/certificates",
            {"cert": stream_pki.exact.chain_pem, "key": stream_pki.exact.key_pem, "snis": ["stream.test"]},
        )
        admin.post(f"/services/{svc['id']}/routes", {"protocols": ["tls"], "snis": ["stream.test"]})
        assert all(read_all(plain) == b"alive\n" for _ in range(20))
        assert "alive" in s_client_msg(secure, "stream.test")
    finally:
        admin.close()
        gw.stop()
    lines = [line for line in gw.error_log.read_text().splitlines() if " proxy 127.0.0.1:" in line]
    pids = {line.split("#")[0].split()[-1] for line in lines}
    assert len(lines) == 21 and pids and gw.proc is not None and str(gw.proc.pid) not in pids  # workers, not master


def _target_health(admin: Admin, upstream: str) -> dict[str, Any]:
    return {entry["target"]: entry["health"] for entry in admin.get(f"/upstreams/{upstream}/health")["data"]}


def test_tcp_active_checks_run_for_stream(
    stream_gateway: tuple[GatewayProcess, int, int],
    nginx: NginxRunner,  # noqa: F811
) -> None:
    gw, plain, _ = stream_gateway
    alive: NginxServer = nginx.start("", stream=ALIVE)
    dead = f"127.0.0.1:{closed_port()}"
    checks = {
        "active": {
            "type": "tcp",
            "healthy": {"interval": 0.1, "successes": 1},
            "unhealthy": {"interval": 0.1, "tcp_failures": 1, "timeouts": 1},
        }
    }
    admin = Admin(gw)
    try:
        admin.post("/upstreams", {"name": "tcp-up", "healthchecks": checks})
        admin.post("/upstreams/tcp-up/targets", {"target": dead})
        admin.post("/upstreams/tcp-up/targets", {"target": f"127.0.0.1:{alive.port}"})
        svc = admin.post("/services", {"name": "balanced", "url": "tcp://tcp-up:1", "retries": 0})
        admin.post(f"/services/{svc['id']}/routes", {"protocols": ["tcp"], "destinations": [{"port": plain}]})
        deadline = time.monotonic() + 10
        while _target_health(admin, "tcp-up").get(dead) != "UNHEALTHY":
            assert time.monotonic() < deadline, _target_health(admin, "tcp-up")
            time.sleep(0.05)
        assert _target_health(admin, "tcp-up")[f"127.0.0.1:{alive.port}"] == "HEALTHY"
        # with retries=0, a connection balanced to the dead target would fail: none is
        assert all(read_all(plain) == b"alive\n" for _ in range(10))
    finally:
        admin.close()
