"""The real gateway with every kind of proxy listener the HTTP/2 tests need, in front of the threaded upstream.

Listeners: ``h2c`` (plain, ``http2``), ``h2`` (``ssl http2``), ``tls`` (``ssl`` without ``http2``: HTTP/1.1 only),
``plain`` (no flag). Routes: ``/`` to the upstream; ``/mtls`` with mtls-auth trusting the test CA, whose
``client-a`` leaf maps to a consumer of that username.
"""

from __future__ import annotations

import pathlib
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.fixtures.admin_client import Admin
from tests.fixtures.certs import Issued, make_ca, make_cert
from tests.fixtures.gateway_process import GatewayProcess, make_gateway
from tests.fixtures.ports import free_port
from tests.integration.downstream.upstream import running_upstream

TIMEOUT = 15.0


@dataclass
class Client:
    cert: str
    key: str


@dataclass
class H2Setup:
    gw: GatewayProcess
    h2: int
    h2c: int
    tls: int
    plain: int
    alice: Client
    consumer_id: str

    def url(self, port: int, path: str, tls: bool = True) -> str:
        return f"{'https' if tls else 'http'}://127.0.0.1:{port}{path}"


def _files(directory: pathlib.Path, issued: Issued) -> Client:
    cert = directory / "client.pem"
    key = directory / "client.key"
    cert.write_text(issued.chain_pem)
    key.write_text(issued.key_pem)
    return Client(str(cert), str(key))


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    """curl, bounded, with ``-k`` (the default certificate) and ``-sS``."""
    cmd = ["curl", "-sS", "-k", "--max-time", str(int(TIMEOUT)), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT + 5)


@pytest.fixture(scope="module")
def h2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[H2Setup]:
    directory = tmp_path_factory.mktemp("h2")
    ca = make_ca("h2 test client CA")
    alice = _files(directory, make_cert("client-a", ca))
    with running_upstream() as upstream_port:
        gw = make_gateway(directory)
        h2_port, h2c_port, tls_port = free_port(), free_port(), free_port()
        gw.env["KONG_PROXY_LISTEN"] = (
            f"127.0.0.1:{gw.proxy_port}, 127.0.0.1:{h2c_port} http2, 127.0.0.1:{h2_port} http2 ssl, "
            f"127.0.0.1:{tls_port} ssl"
        )
        gw.start()
        admin = Admin(gw)
        try:
            ca_id = admin.post("/ca_certificates", {"cert": ca.cert_pem})["id"]
            consumer = admin.post("/consumers", {"username": "client-a"})
            admin.post("/services", {"name": "up", "url": f"http://127.0.0.1:{upstream_port}"})
            admin.post("/services/up/routes", {"name": "root", "paths": ["/"]})
            admin.post("/services/up/routes", {"name": "mtls", "paths": ["/mtls"]})
            admin.post("/routes/mtls/plugins", {"name": "mtls-auth", "config": {"ca_certificates": [ca_id]}})
            setup = H2Setup(gw, h2_port, h2c_port, tls_port, gw.proxy_port, alice, consumer["id"])
            _wait_for_routes(setup)
            yield setup
        finally:
            admin.close()
            assert gw.stop() == 0
            errors = gw.error_log.read_text()
            assert "Traceback" not in errors and "[alert]" not in errors, errors


def _wait_for_routes(setup: H2Setup) -> None:
    """Admin API writes reach the proxy asynchronously: poll (bounded) until the mtls route answers 401."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        out = curl("-o", "/dev/null", "-w", "%{http_code}", setup.url(setup.tls, "/mtls"))
        if out.stdout == "401":
            return
        assert time.monotonic() < deadline, out
        time.sleep(0.05)
