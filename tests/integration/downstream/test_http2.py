"""HTTP/2 downstream (issue 16, slice 1) with real clients: curl, httpx, nghttp, against the real gateway process.

Each stream runs the exchange an HTTP/1.1 request runs: Kong's headers, the access log (``HTTP/2.0``), mtls-auth
(its verdict belongs to the connection), pooled upstream connections; and flow control carries bodies larger than
every window both ways.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import re
import socket
import ssl
import subprocess
import time

import httpx
import pytest
from h2.config import H2Configuration
from h2.connection import H2Connection as H2Machine
from h2.events import ResponseReceived

from tests.integration.downstream.conftest import TIMEOUT, H2Setup, curl
from tests.integration.downstream.upstream import pattern

HOP_BY_HOP = ("connection", "keep-alive", "transfer-encoding", "upgrade", "proxy-connection")


def _head(output: str) -> tuple[str, dict[str, str]]:
    """``curl -i`` output -> (status line, lowercase headers)."""
    head = output.replace("\r\n", "\n").split("\n\n", 1)[0].split("\n")
    headers = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return head[0], headers


def test_curl_http2_over_tls_gets_kong_headers_and_no_hop_by_hop(h2: H2Setup) -> None:
    out = curl("--http2", "-i", h2.url(h2.h2, "/anything?x=1"))
    assert out.returncode == 0, out.stderr
    status, headers = _head(out.stdout)
    assert status.strip() == "HTTP/2 200"
    assert " kong/" in headers["via"]
    assert re.fullmatch(r"[0-9a-f]{32}", headers["x-kong-request-id"])
    assert "x-kong-upstream-latency" in headers and "x-kong-proxy-latency" in headers
    assert not set(HOP_BY_HOP) & set(headers)
    # the upstream got an HTTP/1.1 request; the client's host (from :authority) in X-Forwarded-Host
    body = json.loads(out.stdout.replace("\r\n", "\n").split("\n\n", 1)[1])
    sent = dict(body["headers"])
    assert body["request_line"] == "GET /anything?x=1 HTTP/1.1"
    assert sent["x-forwarded-host"] == "127.0.0.1"
    assert sent["x-forwarded-proto"] == "https"
    assert sent["x-forwarded-port"] == str(h2.h2)


def test_access_log_says_http_2_0(h2: H2Setup) -> None:
    marker = "/logged-h2-line"
    assert curl("--http2", "-o", "/dev/null", h2.url(h2.h2, marker)).returncode == 0
    line = _poll_file(h2.gw.access_log, marker)
    assert f'"GET {marker} HTTP/2.0" 200 ' in line


def _poll_file(path: pathlib.Path, needle: str) -> str:
    """The first line of ``path`` holding ``needle``, polled (bounded): the log is written after the response."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if path.exists():
            for line in path.read_text().splitlines():
                if needle in line:
                    return line
        time.sleep(0.05)
    raise AssertionError(f"{needle} never reached {path.name}")


def test_curl_http2_prior_knowledge_over_tls(h2: H2Setup) -> None:
    out = curl("--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_version} %{http_code}", h2.url(h2.h2, "/"))
    assert out.stdout == "2 200", out.stderr


def test_alpn_offers_h2_first_only_on_http2_listeners(h2: H2Setup) -> None:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1", "h2"])  # the server's preference decides
    for port, expected in ((h2.h2, "h2"), (h2.tls, "http/1.1")):
        with (
            socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw,
            ctx.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            assert tls.selected_alpn_protocol() == expected
    # a client offering only h2 to the HTTP/1 listener gets nginx's no_application_protocol alert
    only_h2 = ssl.create_default_context()
    only_h2.check_hostname = False
    only_h2.verify_mode = ssl.CERT_NONE
    only_h2.set_alpn_protocols(["h2"])
    with (
        socket.create_connection(("127.0.0.1", h2.tls), timeout=TIMEOUT) as raw,
        pytest.raises(ssl.SSLError, match="no application protocol"),
    ):
        only_h2.wrap_socket(raw, server_hostname="localhost")
    # and curl --http2 falls back to HTTP/1.1 there
    out = curl("--http2", "-o", "/dev/null", "-w", "%{http_version} %{http_code}", h2.url(h2.tls, "/"))
    assert out.stdout == "1.1 200"


def test_h2c_prior_knowledge_next_to_http1_on_a_plain_http2_listener(h2: H2Setup) -> None:
    fmt = ("-o", "/dev/null", "-w", "%{http_version} %{http_code}")
    assert curl("--http2-prior-knowledge", *fmt, h2.url(h2.h2c, "/", tls=False)).stdout == "2 200"
    assert curl("--http1.1", *fmt, h2.url(h2.h2c, "/", tls=False)).stdout == "1.1 200"
    # a plain listener without the flag treats the preface as a bad HTTP/1 request
    out = curl("--http2-prior-knowledge", *fmt, h2.url(h2.plain, "/", tls=False))
    assert out.stdout != "2 200"


def test_httpx_http2_large_bodies_both_ways(h2: H2Setup) -> None:
    """Bodies far beyond the 64 KiB initial windows: flow control on both sides, content checked by digest."""
    upload = pattern(3 * 1024 * 1024 + 7)
    with httpx.Client(http2=True, verify=False, timeout=TIMEOUT) as client:
        res = client.post(h2.url(h2.h2, "/echo"), content=upload)
        assert res.http_version == "HTTP/2"
        assert res.status_code == 200
        echo = res.json()
        assert echo["length"] == len(upload)
        assert echo["sha256"] == hashlib.sha256(upload).hexdigest()
        # a body of unknown length (a generator: no content-length) goes upstream chunked
        res = client.post(h2.url(h2.h2, "/echo"), content=iter([upload[:100_000], upload[100_000:]]))
        echo = res.json()
        assert ("transfer-encoding", "chunked") in [tuple(h) for h in echo["headers"]]
        assert echo["sha256"] == hashlib.sha256(upload).hexdigest()
        size = 5 * 1024 * 1024 + 3
        res = client.get(h2.url(h2.h2, f"/big?n={size}"))
        assert res.status_code == 200
        assert res.headers["content-length"] == str(size)
        assert res.content == pattern(size)


def test_httpx_http2_head_has_no_body(h2: H2Setup) -> None:
    with httpx.Client(http2=True, verify=False, timeout=TIMEOUT) as client:
        res = client.head(h2.url(h2.h2, "/big?n=1000"))
        assert res.http_version == "HTTP/2"
        assert res.status_code == 200
        assert res.headers["content-length"] == "1000"
        assert res.content == b""


def test_nghttp_multiplexes_concurrent_streams_on_one_connection(h2: H2Setup) -> None:
    """Ten requests that the upstream answers only when all ten wait there together: one connection carried them."""
    n = 10
    urls = [h2.url(h2.h2, f"/barrier?n={n}&i={i}") for i in range(n)]
    proc = subprocess.run(["nghttp", "-nv", *urls], capture_output=True, text=True, timeout=TIMEOUT + 5)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
    statuses = re.findall(r"recv \(stream_id=(\d+)\) :status: (\d+)", proc.stdout)
    assert len(statuses) == n
    assert {status for _, status in statuses} == {"200"}
    assert len({sid for sid, _ in statuses}) == n  # n streams...
    assert proc.stdout.count("] Connected") == 1  # ...of one connection


def test_generated_kong_error_on_a_stream(h2: H2Setup) -> None:
    out = curl("--http2", "-i", "-H", "Accept: application/json", h2.url(h2.h2, "/mtls"))
    status, headers = _head(out.stdout)
    assert status.strip() == "HTTP/2 401"
    assert headers["content-type"].startswith("application/json")
    assert out.stdout.rstrip().endswith('{"message":"No required TLS certificate was sent"}')
    assert not set(HOP_BY_HOP) & set(headers)


def test_mtls_auth_over_h2_consumer_headers_with_a_certificate(h2: H2Setup) -> None:
    out = curl("--http2", "-i", "--cert", h2.alice.cert, "--key", h2.alice.key, h2.url(h2.h2, "/mtls"))
    status, _ = _head(out.stdout)
    assert status.strip() == "HTTP/2 200", out.stdout + out.stderr
    sent = dict(json.loads(out.stdout.replace("\r\n", "\n").split("\n\n", 1)[1])["headers"])
    assert sent["x-consumer-username"] == "client-a"
    assert sent["x-consumer-id"] == h2.consumer_id


def test_mtls_every_stream_of_a_certified_connection_is_the_consumer(h2: H2Setup) -> None:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.load_cert_chain(h2.alice.cert, h2.alice.key)
    with httpx.Client(http2=True, verify=ctx, timeout=TIMEOUT) as client:
        for _ in range(3):
            res = client.get(h2.url(h2.h2, "/mtls"))
            assert res.http_version == "HTTP/2"
            assert res.status_code == 200
            assert dict(res.json()["headers"])["x-consumer-username"] == "client-a"
    with httpx.Client(http2=True, verify=False, timeout=TIMEOUT) as client:
        assert client.get(h2.url(h2.h2, "/mtls")).status_code == 401


def test_h2c_preface_split_across_reads(h2: H2Setup) -> None:
    """The preface decides even when it arrives in pieces (held until complete), with a real h2 client state."""
    client = H2Machine(H2Configuration(client_side=True, header_encoding=None))
    client.initiate_connection()
    opening = client.data_to_send()
    with socket.create_connection(("127.0.0.1", h2.h2c), timeout=TIMEOUT) as sock:
        sock.sendall(opening[:5])  # "PRI *": HTTP/1.1 could still be meant, nothing is decided
        time.sleep(0.05)  # a separate read on the server (the order of bytes is what matters, not the delay)
        sock.sendall(opening[5:])
        client.send_headers(1, [(":method", "GET"), (":scheme", "http"), (":authority", "x"), (":path", "/h2c")], True)
        sock.sendall(client.data_to_send())
        status = None
        while status is None:
            data = sock.recv(65536)
            assert data, "closed"
            for event in client.receive_data(data):
                if isinstance(event, ResponseReceived):
                    status = dict(event.headers)[b":status"]
            sock.sendall(client.data_to_send())
    assert status == b"200"
