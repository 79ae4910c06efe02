"""``tls_passthrough`` routes: the SNI read from the ClientHello without terminating, the ciphertext forwarded
untouched (the client sees the upstream's own certificate), however the ClientHello is cut; malformed first bytes
close the connection with a log line."""

from __future__ import annotations

import asyncio
import re
import struct
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.nginx import NginxRunner, NginxServer, nginx  # noqa: F401  (fixture)
from tests.integration.proxy.harness import route, service
from tests.integration.stream.harness import cert_cn, running_stream, s_client, split_hello_exchange
from tests.integration.stream.pki import StreamPki

pytestmark = pytest.mark.timeout(60)

#: two TLS servers of nginx's own, each with its certificate, answering with its name and the SNI it saw
TWO_UPSTREAMS = """
server {
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {prefix}/nginx_a.pem;
    ssl_certificate_key {prefix}/nginx_a.key;
    return "nginx-a sni=$ssl_server_name\\n";
}
server {
    listen 127.0.0.1:{port2} ssl;
    ssl_certificate {prefix}/nginx_b.pem;
    ssl_certificate_key {prefix}/nginx_b.key;
    return "nginx-b sni=$ssl_server_name\\n";
}
"""


@pytest.fixture
def upstreams(nginx: NginxRunner, stream_pki: StreamPki) -> NginxServer:  # noqa: F811
    return nginx.start("", files=stream_pki.files(), ports=2, stream=TWO_UPSTREAMS)


def passthrough_config(upstreams: NginxServer) -> dict[str, Any]:
    a = service("127.0.0.1", upstreams.ports[0], protocol="tcp")
    b = service("127.0.0.1", upstreams.ports[1], protocol="tcp")
    return {
        "services": [a, b],
        "routes": [
            route(a, protocols=["tls_passthrough"], snis=["a.pass.test"]),
            route(b, protocols=["tls_passthrough"], snis=["b.pass.test"]),
        ],
    }


async def test_two_snis_on_one_port_reach_two_upstreams_with_their_own_certificates(
    tmp_path: Path, stream_pki: StreamPki, upstreams: NginxServer
) -> None:
    async with running_stream(tmp_path, passthrough_config(upstreams)) as gw:
        a = await s_client(gw.ssl, "a.pass.test", b"", "-CAfile", str(stream_pki.root_file))
        b = await s_client(gw.ssl, "b.pass.test", b"", "-CAfile", str(stream_pki.root_file))
        await gw.wait_for_log("client disconnected|upstream disconnected", 2)
    assert a.subject_cn == "nginx-a" and "nginx-a sni=a.pass.test" in a.output
    assert b.subject_cn == "nginx-b" and "nginx-b sni=b.pass.test" in b.output
    assert "Verify return code: 0 (ok)" in a.output  # nginx's chain, untouched
    assert [c.subject for c in b.chain] == [stream_pki.nginx_b.cert.subject, stream_pki.inter.cert.subject]


@pytest.mark.parametrize("step", [1, 3])
async def test_a_client_hello_in_tiny_segments_still_routes(tmp_path: Path, upstreams: NginxServer, step: int) -> None:
    async with running_stream(tmp_path, passthrough_config(upstreams)) as gw:
        cert, answer = await split_hello_exchange(gw.ssl, "b.pass.test", b"", step=step)
    assert cert_cn(cert) == "nginx-b"
    assert answer == b"nginx-b sni=b.pass.test\n"


def _records(message: bytes, size: int) -> bytes:
    return b"".join(
        struct.pack("!BHH", 0x16, 0x0301, len(message[i : i + size])) + message[i : i + size]
        for i in range(0, len(message), size)
    )


async def _send_and_read(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    try:
        answer = await asyncio.wait_for(reader.read(), 10)
    except ConnectionResetError:
        answer = b""
    writer.close()
    return answer


async def test_a_malformed_client_hello_closes_with_a_log_line(tmp_path: Path, upstreams: NginxServer) -> None:
    server_hello = b"\x02\x00\x00\x04\x03\x03\x00\x00"  # a handshake record, but not a ClientHello
    async with running_stream(tmp_path, passthrough_config(upstreams)) as gw:
        assert await _send_and_read(gw.ssl, _records(server_hello, 3)) == b""
        lines = await gw.wait_for_log("malformed ClientHello")
    assert re.search(
        r"\[info\] \d+#0: \*\d+ ssl preread: malformed ClientHello \(not a client hello\) while prereading client "
        rf"data, client: 127\.0\.0\.1, server: 127\.0\.0\.1:{gw.ssl}$",
        lines[0],
    )
    assert " proxy " not in gw.error_log  # no upstream connection was opened


async def test_a_tcp_route_cannot_be_served_on_an_ssl_listener(tmp_path: Path, upstreams: NginxServer) -> None:
    svc = service("127.0.0.1", upstreams.ports[0], protocol="tcp")
    cfg = {"services": [svc], "routes": [route(svc, protocols=["tcp"], destinations=[{"ip": "127.0.0.1"}])]}
    async with running_stream(tmp_path, cfg) as gw:
        seen = await s_client(gw.ssl, "a.pass.test", b"")
        lines = await gw.wait_for_log("unexpected protocols")
    assert not seen.chain
    assert "[error]" in lines[0] and "unexpected protocols in matched Route while prereading client data" in lines[0]
