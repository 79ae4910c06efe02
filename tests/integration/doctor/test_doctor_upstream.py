"""``gateway doctor upstream`` against real nginx upstreams, and against the gateway's own error log.

The upstreams are the upstream TLS tests' nginx mocks (leaf + intermediate under a testing root, a chain with two
intermediates, a server with ``ssl_verify_client on``). The central case runs the gateway against the same nginx
with the same untrusted CA and checks that the reason the doctor prints is the one the gateway logs.
"""

from __future__ import annotations

import json
import pathlib
import socket
import socketserver
import ssl
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fixtures.gateway_process import run_cli, running_gateway
from tests.fixtures.nginx import NginxRunner
from tests.integration.tls.upstream.kong import KongClient
from tests.integration.tls.upstream.pki import Pki
from tests.integration.tls.upstream.upstreams import Upstreams, start_upstreams

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki.build()


@pytest.fixture(scope="module")
def upstreams(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstreams]:
    runner = NginxRunner(tmp_path_factory.mktemp("doctor-upstreams"))
    try:
        yield start_upstreams(runner, pki)
    finally:
        runner.stop_all()


@pytest.fixture(scope="module")
def files(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    d = tmp_path_factory.mktemp("doctor-files")
    (d / "root.pem").write_text(pki.root.cert_pem)
    (d / "other.pem").write_text(pki.other_ca.cert_pem)
    (d / "client.pem").write_text(pki.client_one.chain_pem)
    (d / "client.key").write_text(pki.client_one.key_pem)
    return d


def doctor(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("doctor", "upstream", *args)


def doctor_json(*args: str) -> tuple[int, dict[str, Any]]:
    out = doctor(*args, "--json")
    document: dict[str, Any] = json.loads(out.stdout)
    assert document["exit"] == out.returncode
    return out.returncode, document


def found(document: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [f for f in document["findings"] if f["kind"] == kind]


def test_an_untrusted_ca_prints_the_code_and_line_the_gateway_logs(
    upstreams: Upstreams, files: pathlib.Path, pki: Pki, tmp_path: pathlib.Path
) -> None:
    port = upstreams.ports["tls"]
    out = doctor(f"127.0.0.1:{port}", "--ca", str(files / "other.pem"))
    assert out.returncode == 1, out.stdout
    lines = out.stdout.splitlines()
    assert "ok       the server sent, at depth 0: CN=localhost, issued by CN=Kong Testing Intermediate CA." in lines
    assert (
        "ok       the server sent, at depth 1: CN=Kong Testing Intermediate CA, issued by CN=Kong Testing Root CA."
        in (lines)
    )
    assert (
        "verify step, depth 1: CN=Kong Testing Intermediate CA (sent by the server): 20:unable to get local issuer"
        in (out.stdout)
    )
    [refused] = [line for line in lines if line.startswith("problem  the gateway refuses")]
    assert (
        "Kong's error.log: [error] upstream SSL certificate verify error: (20:unable to get local issuer certificate) "
        f'while SSL handshaking to upstream, upstream: "https://127.0.0.1:{port}/"' in refused
    )
    assert "Fix: the trust store (" in refused and "holds no CA that issued CN=Kong Testing Intermediate CA" in refused
    _, document = doctor_json(f"127.0.0.1:{port}", "--ca", str(files / "other.pem"))
    [verdict] = found(document, "upstream_refused")
    assert verdict["facts"]["code"] == 20

    # the gateway, against the same nginx with the same CA, logs the same reason
    with running_gateway(tmp_path, {"KONG_LOG_LEVEL": "debug"}) as gw:
        kong = KongClient(gw)
        try:
            ca = kong.post("/ca_certificates", {"cert": pki.other_ca.cert_pem})
            svc = kong.post(
                "/services",
                {
                    "name": "s",
                    "url": f"https://127.0.0.1:{port}/",
                    "tls_verify": True,
                    "ca_certificates": [ca["id"]],
                    "retries": 0,
                },
            )
            kong.post("/routes", {"hosts": ["doctor.test"], "service": {"id": svc["id"]}})
            assert kong.get("doctor.test").status_code == 502
            logged = [line for line in kong.error_lines() if "while SSL handshaking to upstream" in line]
        finally:
            kong.close()
    assert len(logged) == 1
    assert f"{verdict['facts']['reason']} while SSL handshaking to upstream" in logged[0]
    assert f'upstream: "https://127.0.0.1:{port}/"' in logged[0]


def test_no_trust_store_at_all_is_kongs_default_and_fails_with_20(upstreams: Upstreams) -> None:
    code, document = doctor_json(f"127.0.0.1:{upstreams.ports['tls']}")
    assert code == 1
    [profile] = found(document, "upstream_profile")
    assert "trust store empty: no ca_certificates and no proxy_ssl_trusted_certificate" in profile["message"]
    assert "depth 1 (from proxy_ssl_verify_depth)" in profile["message"]
    assert found(document, "upstream_refused")[0]["facts"]["code"] == 20


def test_a_trusted_ca_is_accepted(upstreams: Upstreams, files: pathlib.Path) -> None:
    port = upstreams.ports["tls"]
    out = doctor(f"localhost:{port}", "--ca", str(files / "root.pem"))
    assert out.returncode == 0, out.stdout
    assert "SNI sent localhost; name checked localhost" in out.stdout
    assert "verify step, depth 2: CN=Kong Testing Root CA (from the trust store): ok." in out.stdout
    assert "host check: the certificate covers localhost (X509_check_host)." in out.stdout
    assert (
        "ok       the gateway accepts this upstream with these settings: the handshake and its checks pass."
        in out.stdout
    )
    assert "ok       GET / over this connection: the upstream answered HTTP/1.1 200 OK." in out.stdout
    assert out.stdout.splitlines()[-1] == "summary: no problems, 0 warnings"


def test_a_host_mismatch(upstreams: Upstreams, files: pathlib.Path) -> None:
    code, document = doctor_json(
        f"127.0.0.1:{upstreams.ports['tls']}", "--ca", str(files / "root.pem"), "--sni", "x.test"
    )
    assert code == 1
    [verdict] = found(document, "upstream_refused")
    assert verdict["facts"]["reason"] == 'upstream SSL certificate does not match "x.test"'
    assert "connect with a name the certificate covers" in verdict["fix"]
    assert found(document, "name_mismatch")


def test_a_depth_too_small_is_22_and_says_the_depth_to_set(upstreams: Upstreams, files: pathlib.Path) -> None:
    target = f"localhost:{upstreams.ports['deep']}"
    code, document = doctor_json(target, "--ca", str(files / "root.pem"), "--depth", "1")
    assert code == 1
    [verdict] = found(document, "upstream_refused")
    assert verdict["facts"]["reason"] == "upstream SSL certificate verify error: (22:certificate chain too long)"
    assert verdict["facts"]["needed"] == 2
    assert "Set tls_verify_depth = 2 on the service" in verdict["fix"]
    assert (
        "depth 1 (from --depth, as the service's tls_verify_depth)" in found(document, "upstream_profile")[0]["message"]
    )
    assert doctor(target, "--ca", str(files / "root.pem"), "--depth", "2").returncode == 0


def test_a_server_requiring_a_client_certificate(upstreams: Upstreams, files: pathlib.Path) -> None:
    target = f"127.0.0.1:{upstreams.ports['mtls']}"
    root = str(files / "root.pem")
    without = doctor(target, "--ca", root, "--sni", "example.com")
    assert without.returncode == 1, without.stdout
    [line] = [line for line in without.stdout.splitlines() if line.startswith("problem ")]
    assert "the upstream requires a client certificate and got none it accepts (HTTP/1.1 400 Bad Request)" in line
    assert "Fix: give the service a client_certificate" in line
    assert "client certificate none" in without.stdout

    with_cert = doctor(
        target,
        "--ca",
        root,
        "--sni",
        "example.com",
        "--cert",
        str(files / "client.pem"),
        "--key",
        str(files / "client.key"),
    )
    assert with_cert.returncode == 0, with_cert.stdout
    assert "client certificate CN=example.com (from --cert, as the service's client_certificate)" in with_cert.stdout
    assert "the upstream answered HTTP/1.1 200 OK." in with_cert.stdout


def test_usage_errors_exit_2(files: pathlib.Path) -> None:
    assert doctor("no-port").returncode == 2
    out = doctor("127.0.0.1:1", "--cert", str(files / "client.pem"))
    assert out.returncode == 2
    assert "--cert and --key go together" in out.stderr


def test_nothing_listening_is_a_problem_not_a_traceback() -> None:
    from tests.fixtures.ports import closed_port

    out = doctor(f"127.0.0.1:{closed_port()}")
    assert out.returncode == 1
    assert "problem  cannot connect to 127.0.0.1:" in out.stdout
    assert out.stderr == ""


def test_the_settings_give_what_the_options_do_not(upstreams: Upstreams, files: pathlib.Path) -> None:
    conf = files / "gateway.conf"
    conf.write_text(f"proxy_ssl_trusted_certificate = {files / 'root.pem'}\nproxy_ssl_verify_depth = 0\n")
    target = f"localhost:{upstreams.ports['tls']}"
    code, document = doctor_json(target, "-c", str(conf))
    assert code == 1
    [profile] = found(document, "upstream_profile")
    assert f"trust store proxy_ssl_trusted_certificate = {files / 'root.pem'}" in profile["message"]
    assert "depth 0 (from proxy_ssl_verify_depth)" in profile["message"]
    [verdict] = found(document, "upstream_refused")
    assert verdict["facts"]["code"] == 22 and verdict["facts"]["needed"] == 1
    # the option wins over the setting, as a service's tls_verify_depth does
    assert doctor(target, "-c", str(conf), "--depth", "1").returncode == 0


class _RequireCertHandler(socketserver.BaseRequestHandler):
    """A Python TLS 1.3 server that requires a client certificate: without one, the handshake ends in an alert."""

    context: ssl.SSLContext

    def handle(self) -> None:
        raw: socket.socket = self.request
        raw.settimeout(10)
        tls = self.context.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
        try:
            tls.do_handshake()
            tls.recv(4096)
            tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        except (ssl.SSLError, OSError):
            # the handshake failed (the point of this server): close as nginx does, lingering, so that the client's
            # request arriving meanwhile does not turn the close into a reset that drops the alert
            try:
                tls.shutdown(socket.SHUT_WR)
                while tls.recv(4096):
                    pass
            except OSError:
                pass
        finally:
            tls.close()


@pytest.fixture
def require_cert_server(pki: Pki, files: pathlib.Path) -> Iterator[int]:
    (files / "server.pem").write_text(pki.server_localhost.chain_pem)
    (files / "server.key").write_text(pki.server_localhost.key_pem)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(files / "server.pem", files / "server.key")
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(files / "root.pem")
    handler = type("Handler", (_RequireCertHandler,), {"context": ctx})
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_a_tls13_server_requiring_a_client_certificate_is_named(require_cert_server: int, files: pathlib.Path) -> None:
    target = f"localhost:{require_cert_server}"
    root = str(files / "root.pem")
    code, document = doctor_json(target, "--ca", root)
    assert code == 1, [f["message"] for f in document["findings"]][-2:]
    [required] = found(document, "client_cert_required")
    assert "certificate required" in required["message"]
    assert found(document, "upstream_ok")  # the handshake itself passes: TLS 1.3 refuses the certificate after it
    with_cert = doctor(target, "--ca", root, "--cert", str(files / "client.pem"), "--key", str(files / "client.key"))
    assert with_cert.returncode == 0, with_cert.stdout
    assert "the upstream answered HTTP/1.1 200 OK." in with_cert.stdout
