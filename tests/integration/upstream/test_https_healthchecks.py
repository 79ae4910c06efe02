"""Active ``https`` health checks against real nginx TLS targets (reference section 7, case 96).

The probe's TLS is not the proxy's: trust = ``lua_ssl_trusted_certificate`` (``system`` by default), depth =
``lua_ssl_verify_depth``, verify = ``https_verify_certificate`` (default on), client certificate =
``upstream.client_certificate`` else the global ``client_ssl_cert``; SNI = ``https_sni`` else the target name.
What the targets saw is read from their own logs (``$ssl_server_name``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.nginx import NginxRunner, NginxServer
from tests.integration.tls.upstream.pki import Pki

TARGETS = """
    log_format sni '$server_port $ssl_server_name $ssl_client_s_dn';
    ssl_protocols TLSv1.2 TLSv1.3;
    server {
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {prefix}/localhost.pem; ssl_certificate_key {prefix}/localhost.key;
        access_log {prefix}/sni.log sni;
        location / { return 200 "tls"; }
    }
    server {
        listen 127.0.0.1:{port2} ssl;
        ssl_certificate {prefix}/example.pem; ssl_certificate_key {prefix}/example.key;
        ssl_client_certificate {prefix}/root.pem; ssl_verify_client on; ssl_verify_depth 3;
        access_log {prefix}/sni.log sni;
        location / { return 200 "mtls"; }
    }
    server {
        listen 127.0.0.1:{port3};
        location / { return 200 "plain http"; }
    }
"""


def _checks(**active: Any) -> dict[str, Any]:
    """Fast active ``https`` checks: one failure or one success flips the state; 400 counts as a failure (nginx's
    answer to a missing client certificate)."""
    base: dict[str, Any] = {
        "type": "https",
        "timeout": 1,
        "healthy": {"interval": 0.1, "successes": 1},
        "unhealthy": {
            "interval": 0.1,
            "tcp_failures": 1,
            "http_failures": 1,
            "timeouts": 1,
            "http_statuses": [400, 500, 502, 503],
        },
    }
    base.update(active)
    return {"active": base}


@pytest.fixture(scope="module")
def targets(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Any:
    runner = NginxRunner(tmp_path_factory.mktemp("https-targets"))
    files = {
        "root.pem": pki.root.cert_pem.encode(),
        "localhost.pem": pki.server_localhost.chain_pem.encode(),
        "localhost.key": pki.server_localhost.key_pem.encode(),
        "example.pem": pki.server_example.chain_pem.encode(),
        "example.key": pki.server_example.key_pem.encode(),
    }
    try:
        yield runner.start(TARGETS, files=files, ports=3)
    finally:
        runner.stop_all()


def _sni_lines(server: NginxServer, port: int) -> list[str]:
    path = server.prefix / "sni.log"
    lines = path.read_text().splitlines() if path.exists() else []
    return [line for line in lines if line.startswith(f"{port} ")]


def _pem_files(tmp_path: Path, pki: Pki) -> dict[str, str]:
    root = tmp_path / "root.pem"
    root.write_text(pki.root.cert_pem)
    cert = tmp_path / "client.pem"
    cert.write_text(pki.client_one.chain_pem)
    key = tmp_path / "client.key"
    key.write_text(pki.client_one.key_pem)
    return {"root": str(root), "cert": str(cert), "key": str(key)}


def test_verification_sni_and_upstream_client_certificate(targets: NginxServer, pki: Pki, gateway_factory: Any) -> None:
    tls_port, mtls_port, plain_port = targets.ports
    gw = gateway_factory()  # defaults: system trust store, depth 1, no global client certificate
    kong = gw.kong

    # 1. an untrusted chain (our test root is not in the system store): verification fails -> UNHEALTHY, with
    #    Kong's line and the cosocket's error text; not verifying -> HEALTHY
    tls_target = f"localhost:{tls_port}"
    mark = kong.mark()
    kong.post("/upstreams", {"name": "tls.test", "healthchecks": _checks()})
    kong.post("/upstreams/tls.test/targets", {"target": tls_target})
    gw.wait_health("tls.test", tls_target, "UNHEALTHY")
    line = (
        f"[healthcheck] (default:tls.test) failed SSL handshake with 'localhost (127.0.0.1:{tls_port})', "
        "using server name (sni) 'localhost': 20: unable to get local issuer certificate, context: ngx.timer"
    )
    assert any(line in text for text in kong.lines_since(mark)), "\n".join(kong.lines_since(mark)[-20:])
    kong.patch("/upstreams/tls.test", {"healthchecks": _checks(https_verify_certificate=False)})
    gw.wait_health("tls.test", tls_target, "HEALTHY")
    assert _sni_lines(targets, tls_port)[-1].split()[1] == "localhost"  # SNI = the target name by default

    # 2. https_sni is what the target sees
    kong.patch(
        "/upstreams/tls.test", {"healthchecks": _checks(https_verify_certificate=False, https_sni="probe.example")}
    )
    before = len(_sni_lines(targets, tls_port))
    gw.wait_health("tls.test", tls_target, "HEALTHY")
    kong.patch("/upstreams/tls.test", {"host_header": "header.example"})  # https_sni still wins over host_header
    deadline_lines = _wait_lines(targets, tls_port, before + 3)
    assert {line.split()[1] for line in deadline_lines[before + 1 :]} == {"probe.example"}

    # 3. a target requiring a client certificate: healthy only once the upstream entity provides one
    mtls_target = f"127.0.0.1:{mtls_port}"
    kong.post("/upstreams", {"name": "mtls.test", "healthchecks": _checks(https_verify_certificate=False)})
    kong.post("/upstreams/mtls.test/targets", {"target": mtls_target})
    gw.wait_health("mtls.test", mtls_target, "UNHEALTHY")  # nginx: 400 No required SSL certificate was sent
    cert = kong.post("/certificates", {"cert": pki.client_one.chain_pem, "key": pki.client_one.key_pem})
    kong.patch("/upstreams/mtls.test", {"client_certificate": {"id": cert["id"]}})
    gw.wait_health("mtls.test", mtls_target, "HEALTHY")
    assert "CN=example.com" in _sni_lines(targets, mtls_port)[-1]
    # a service's own client certificate is never used by health checks
    kong.patch("/upstreams/mtls.test", {"client_certificate": None})
    gw.route("mtls", "mtls.test", protocol="https", client_certificate={"id": cert["id"]})
    gw.wait_health("mtls.test", mtls_target, "UNHEALTHY")

    # 4. case 96: an https check against a plain HTTP target with an Upstream.client_certificate -> UNHEALTHY
    plain_target = f"127.0.0.1:{plain_port}"
    kong.post(
        "/upstreams",
        {"name": "plain.test", "client_certificate": {"id": cert["id"]}, "healthchecks": _checks()},
    )
    kong.post("/upstreams/plain.test/targets", {"target": plain_target})
    gw.wait_health("plain.test", plain_target, "UNHEALTHY")
    assert any(
        f"failed SSL handshake with '127.0.0.1 (127.0.0.1:{plain_port})', using server name (sni) '127.0.0.1': "
        "handshake failed" in text
        for text in kong.error_lines()
    )
    body = gw.health("plain.test")
    assert body["node_id"] and body["next"] is None
    entry = body["data"][0]
    assert entry["health"] == "UNHEALTHY" and entry["data"]["addresses"][0]["health"] == "UNHEALTHY"
    assert entry["data"]["dns"] == "A" and entry["data"]["host"] == "127.0.0.1"


def _wait_lines(server: NginxServer, port: int, count: int, timeout: float = 10.0) -> list[str]:
    import time

    deadline = time.monotonic() + timeout
    while True:
        lines = _sni_lines(server, port)
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.02)


def test_global_client_certificate_and_trust_store(
    targets: NginxServer, pki: Pki, gateway_factory: Any, tmp_path: Path
) -> None:
    tls_port, mtls_port, plain_port = targets.ports
    files = _pem_files(tmp_path, pki)
    gw = gateway_factory(
        {
            "KONG_CLIENT_SSL": "on",
            "KONG_CLIENT_SSL_CERT": files["cert"],
            "KONG_CLIENT_SSL_CERT_KEY": files["key"],
            "KONG_LUA_SSL_TRUSTED_CERTIFICATE": files["root"],
        }
    )
    kong = gw.kong
    # verified against lua_ssl_trusted_certificate (root -> intermediate -> leaf fits depth 1), the global client
    # certificate satisfies the mTLS target; the SNI matches its certificate's CN
    mtls_target = f"127.0.0.1:{mtls_port}"
    kong.post("/upstreams", {"name": "mtls.test", "healthchecks": _checks(https_sni="example.com")})
    kong.post("/upstreams/mtls.test/targets", {"target": mtls_target})
    gw.wait_health("mtls.test", mtls_target, "HEALTHY")
    # the same target checked under a name its certificate does not carry: host check fails
    kong.patch("/upstreams/mtls.test", {"healthchecks": _checks(https_sni="other.example")})
    gw.wait_health("mtls.test", mtls_target, "UNHEALTHY")
    assert any("using server name (sni) 'other.example': certificate host mismatch" in t for t in kong.error_lines())
    # trusted via the file, so the localhost target is healthy with verification on
    tls_target = f"localhost:{tls_port}"
    kong.post("/upstreams", {"name": "tls.test", "healthchecks": _checks()})
    kong.post("/upstreams/tls.test/targets", {"target": tls_target})
    gw.wait_health("tls.test", tls_target, "HEALTHY")
    # case 96 with the global client_ssl certificate: https check against plain HTTP -> UNHEALTHY
    plain_target = f"127.0.0.1:{plain_port}"
    kong.post("/upstreams", {"name": "plain.test", "healthchecks": _checks(https_verify_certificate=False)})
    kong.post("/upstreams/plain.test/targets", {"target": plain_target})
    gw.wait_health("plain.test", plain_target, "UNHEALTHY")
