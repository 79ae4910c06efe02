"""``tls`` routes on an ``ssl`` stream listener: TLS terminated with the proxy listeners' certificates and SNI order,
to a plain ``tcp`` service or to a ``tls`` service under its full upstream TLS profile (client certificate at three
levels, trust, depth, SNI), with real peers (``openssl s_client``, nginx's stream module with
``ssl_verify_client on``)."""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.nginx import NginxRunner, NginxServer, nginx  # noqa: F401  (fixture)
from tests.fixtures.tls_peers import client_hello
from tests.integration.proxy.harness import route, service
from tests.integration.stream.harness import line_server, running_stream, s_client
from tests.integration.stream.pki import StreamPki, certificate_row

pytestmark = pytest.mark.timeout(60)

#: nginx's stream module as the upstream: TLS with a lone leaf, a client certificate required, and the SNI it got
MTLS_UPSTREAM = """
server {
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {prefix}/upstream.pem;
    ssl_certificate_key {prefix}/upstream.key;
    ssl_verify_client on;
    ssl_client_certificate {prefix}/root.pem;
    return "client=$ssl_client_s_dn sni=$ssl_server_name\\n";
}
"""


def tls_route(svc: dict[str, Any], snis: list[str], **fields: Any) -> dict[str, Any]:
    return route(svc, protocols=["tls"], snis=snis, **fields)


def gateway_certs(pki: StreamPki) -> list[dict[str, Any]]:
    return [certificate_row(pki.exact, ["stream.test", "exact.wild.test"]), certificate_row(pki.wild, ["*.wild.test"])]


@pytest.fixture
def mtls_upstream(nginx: NginxRunner, stream_pki: StreamPki) -> NginxServer:  # noqa: F811
    return nginx.start("", files=stream_pki.files(), stream=MTLS_UPSTREAM)


async def test_terminated_to_a_plain_tcp_service(tmp_path: Path, stream_pki: StreamPki) -> None:
    async with line_server("echo") as upstream:
        svc = service("127.0.0.1", upstream.port, protocol="tcp")
        cfg = {
            "services": [svc],
            "routes": [tls_route(svc, ["stream.test"])],
            "certificates": gateway_certs(stream_pki),
        }
        async with running_stream(tmp_path, cfg) as gw:
            seen = await s_client(gw.ssl, "stream.test", b"ping\n", "-CAfile", str(stream_pki.root_file))
    assert seen.subject_cn == "stream-exact"
    assert [c.subject for c in seen.chain] == [stream_pki.exact.cert.subject, stream_pki.inter.cert.subject]
    assert "Verify return code: 0 (ok)" in seen.output
    assert "echo: ping" in seen.output
    assert upstream.seen == [b"ping\n"]  # plaintext reached the tcp service


async def test_the_certificate_is_chosen_as_for_the_proxy_listeners(tmp_path: Path, stream_pki: StreamPki) -> None:
    """One index, one order: exact beats ``*.x``; the route's ``*.wild.test`` spans labels (ATC suffix) while the
    certificate's does not, so ``x.y.wild.test`` is routed and gets the default certificate, as on an HTTPS port."""
    async with line_server("echo") as upstream:
        svc = service("127.0.0.1", upstream.port, protocol="tcp")
        cfg = {
            "services": [svc],
            "routes": [tls_route(svc, ["*.wild.test"])],
            "certificates": gateway_certs(stream_pki),
        }
        async with running_stream(tmp_path, cfg) as gw:
            exact = await s_client(gw.ssl, "exact.wild.test", b"1\n")
            wild = await s_client(gw.ssl, "a.wild.test", b"2\n")
            deeper = await s_client(gw.ssl, "x.y.wild.test", b"3\n")
            unrouted = await s_client(gw.ssl, "other.test", b"4\n")
            log = await gw.wait_for_log("no Route found")
    assert (exact.subject_cn, wild.subject_cn, deeper.subject_cn) == ("stream-exact", "stream-wild", "localhost")
    assert "echo: 1" in exact.output and "echo: 2" in wild.output and "echo: 3" in deeper.output
    assert not unrouted.chain  # refused before any handshake: Kong routes on the ClientHello first
    assert "while prereading client data" in log[0]


async def test_no_client_certificate_is_asked_for(tmp_path: Path, stream_pki: StreamPki) -> None:
    async with line_server("echo") as upstream:
        svc = service("127.0.0.1", upstream.port, protocol="tcp")
        cfg = {
            "services": [svc],
            "routes": [tls_route(svc, ["stream.test"])],
            "certificates": gateway_certs(stream_pki),
        }
        async with running_stream(tmp_path, cfg) as gw:
            seen = await s_client(gw.ssl, "stream.test", b"ping\n", "-msg")
    assert "echo: ping" in seen.output
    assert "ServerHello" in seen.output and "CertificateRequest" not in seen.output


def _mtls_config(pki: StreamPki, upstream_port: int, level: str, **service_fields: Any) -> dict[str, Any]:
    """A ``tls`` service to the mTLS upstream whose client certificate comes from ``level``."""
    cert = certificate_row(pki.client, [])
    host = "mtls-upstream" if level == "upstream" else "localhost"
    fields: dict[str, Any] = dict(service_fields)
    if level == "service":
        fields["client_certificate"] = {"id": cert["id"]}
    svc = service(host, upstream_port, protocol="tls", **fields)
    cfg: dict[str, Any] = {
        "services": [svc],
        "routes": [tls_route(svc, ["stream.test"])],
        "certificates": [*gateway_certs(pki), cert],
    }
    if level == "upstream":
        upstream_id = str(uuid.uuid4())
        cfg["upstreams"] = [{"id": upstream_id, "name": "mtls-upstream", "client_certificate": {"id": cert["id"]}}]
        cfg["targets"] = [
            {"id": str(uuid.uuid4()), "target": f"127.0.0.1:{upstream_port}", "upstream": {"id": upstream_id}}
        ]
    return cfg


@pytest.mark.parametrize("level", ["service", "upstream", "global"])
async def test_a_tls_service_presents_its_client_certificate(
    tmp_path: Path, stream_pki: StreamPki, mtls_upstream: NginxServer, level: str
) -> None:
    """Kong's precedence (layer 3): the service's certificate, else the Upstream entity's, else ``client_ssl``."""
    overrides: dict[str, str] = {}
    if level == "global":
        (tmp_path / "client.pem").write_text(stream_pki.client.cert_pem)
        (tmp_path / "client.key").write_text(stream_pki.client.key_pem)
        overrides = {"client_ssl": "on", "client_ssl_cert": str(tmp_path / "client.pem"),
                     "client_ssl_cert_key": str(tmp_path / "client.key")}  # fmt: skip
    cfg = _mtls_config(stream_pki, mtls_upstream.port, level)
    async with running_stream(tmp_path, cfg, overrides=overrides) as gw:
        seen = await s_client(gw.ssl, "stream.test", b"")
    expected_sni = "" if level == "upstream" else "localhost"  # an IP target sends no SNI; a name is sent as is
    assert f"client=CN=gateway-client sni={expected_sni}\n" in seen.output


async def test_without_a_client_certificate_the_upstream_refuses(
    tmp_path: Path, stream_pki: StreamPki, mtls_upstream: NginxServer
) -> None:
    cfg = _mtls_config(stream_pki, mtls_upstream.port, "none")
    async with running_stream(tmp_path, cfg) as gw:
        seen = await s_client(gw.ssl, "stream.test", b"")
    assert seen.subject_cn == "stream-exact"  # the client's handshake is ours, and completes
    assert "client=" not in seen.output
    assert "client sent no required SSL certificate" in mtls_upstream.error_log_text()


async def test_upstream_verification_failure_logs_nginxs_line_and_closes(
    tmp_path: Path, stream_pki: StreamPki, mtls_upstream: NginxServer
) -> None:
    cfg = _mtls_config(stream_pki, mtls_upstream.port, "service", tls_verify=True, retries=1)
    async with running_stream(tmp_path, cfg) as gw:
        seen = await s_client(gw.ssl, "stream.test", b"")
        lines = await gw.wait_for_log("upstream SSL certificate verify error", 2)
    # s_client returned: the connection was closed after our handshake, with nothing from the upstream
    assert seen.subject_cn == "stream-exact" and "client=" not in seen.output
    pattern = (
        r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[error\] \d+#0: \*\d+ upstream SSL certificate verify error: "
        r"\(21:unable to verify the first certificate\) while SSL handshaking to upstream, client: 127\.0\.0\.1, "
        rf'server: 127\.0\.0\.1:{gw.ssl}, upstream: "127\.0\.0\.1:{mtls_upstream.port}", '
        r"bytes from/to client:\d+/0, bytes from/to upstream:0/0$"
    )
    assert len(lines) == 2 and all(re.match(pattern, line) for line in lines), lines  # retries=1: two tries


async def test_verification_with_the_services_ca_and_depth(
    tmp_path: Path, stream_pki: StreamPki, mtls_upstream: NginxServer
) -> None:
    ca = {"id": str(uuid.uuid4()), "cert": stream_pki.root.cert_pem}
    cfg = _mtls_config(stream_pki, mtls_upstream.port, "service", tls_verify=True, ca_certificates=[ca["id"]])
    cfg["ca_certificates"] = [ca]
    async with running_stream(tmp_path, cfg) as gw:
        seen = await s_client(gw.ssl, "stream.test", b"")
    assert "client=CN=gateway-client sni=localhost" in seen.output  # trusted, and the name matches the SNI


async def test_preserve_host_sends_the_clients_sni_upstream(
    tmp_path: Path, stream_pki: StreamPki, mtls_upstream: NginxServer
) -> None:
    cfg = _mtls_config(stream_pki, mtls_upstream.port, "service")
    cfg["routes"][0]["preserve_host"] = True
    async with running_stream(tmp_path, cfg) as gw:
        seen = await s_client(gw.ssl, "stream.test", b"")
    assert "client=CN=gateway-client sni=stream.test" in seen.output


async def test_a_client_that_leaves_mid_handshake_is_logged_as_nginx_does(
    tmp_path: Path, stream_pki: StreamPki
) -> None:
    hello = client_hello("stream.test")
    async with line_server("echo") as upstream:
        svc = service("127.0.0.1", upstream.port, protocol="tcp")
        cfg = {
            "services": [svc],
            "routes": [tls_route(svc, ["stream.test"])],
            "certificates": gateway_certs(stream_pki),
        }
        async with running_stream(tmp_path, cfg) as gw:
            reader, writer = await asyncio.open_connection("127.0.0.1", gw.ssl)
            writer.write(hello)
            await asyncio.wait_for(reader.read(5), 10)  # the ServerHello's record header: the handshake is ours
            writer.close()
            lines = await gw.wait_for_log("while SSL handshaking")
    assert re.search(
        r"\[info\] \d+#0: \*\d+ peer closed connection in SSL handshake while SSL handshaking, "
        rf"client: 127\.0\.0\.1, server: 127\.0\.0\.1:{gw.ssl}$",
        lines[0],
    )
    assert upstream.seen == []
