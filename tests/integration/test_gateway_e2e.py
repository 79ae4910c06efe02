"""Issue 2 acceptance, end to end: the real ``gateway`` process, nginx as the upstream, curl and httpx as clients.

Configuration goes through the Admin API in all three body formats Kong accepts (JSON, form, multipart via
curl); traffic goes through the proxy listener; what the upstream saw is read from nginx's own access log
(``$connection $connection_requests "$request" $status $body_bytes_sent $request_length``).
"""

from __future__ import annotations

import pathlib
import re
import socket
import subprocess
from collections.abc import Iterator

import httpx
import pytest

from tests.fixtures.gateway_process import GatewayProcess, make_gateway
from tests.fixtures.nginx import NginxRunner, NginxServer, nginx  # noqa: F401  (fixture)
from tests.fixtures.ports import closed_port

UPSTREAM = """
server {
    listen 127.0.0.1:{port};
    client_max_body_size 64m;
    location /echo-host { return 200 "host=$host uri=$request_uri xff=$http_x_forwarded_for via=$http_via\\n"; }
    location /big { alias {prefix}/big.bin; }
    # proxy_pass makes nginx read the whole request body, so $request_length counts it
    location /upload { proxy_pass http://127.0.0.1:{port2}; }
    location /chunked { proxy_pass http://127.0.0.1:{port2}; }
    location / { return 200 "upstream ok $request_method $uri\\n"; }
}
server {
    listen 127.0.0.1:{port2};
    client_max_body_size 64m;
    access_log off;
    location / { return 200 "sink\\n"; }
}
"""

REQUEST_ID = re.compile(r"^[0-9a-f]{32}$")


@pytest.fixture
def upstream(nginx: NginxRunner) -> NginxServer:  # noqa: F811
    return nginx.start(UPSTREAM, files={"big.bin": b"x" * (10 * 1024 * 1024)}, ports=2)


@pytest.fixture
def gateway(tmp_path: pathlib.Path) -> Iterator[GatewayProcess]:
    gw = make_gateway(tmp_path).start()
    try:
        yield gw
    finally:
        assert gw.stop() == 0


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["curl", "-sS", *args], capture_output=True, text=True, timeout=60)


def test_services_and_routes_by_json_form_and_multipart(gateway: GatewayProcess, upstream: NginxServer) -> None:
    admin = gateway.admin_url
    # JSON
    svc = httpx.post(f"{admin}/services", json={"name": "by-json", "url": f"http://127.0.0.1:{upstream.port}/j"})
    assert svc.status_code == 201, svc.text
    route = httpx.post(f"{admin}/services/by-json/routes", json={"paths": ["/json"]})
    assert route.status_code == 201, route.text
    # form-urlencoded, with bracket arrays
    out = curl(
        "-X",
        "POST",
        f"{admin}/services",
        "-d",
        "name=by-form",
        "-d",
        "host=127.0.0.1",
        "-d",
        f"port={upstream.port}",
        "-d",
        "path=/f",
        "-w",
        "\n%{http_code}",
    )
    assert out.stdout.endswith("201"), out.stdout
    out = curl(
        "-X",
        "POST",
        f"{admin}/services/by-form/routes",
        "-d",
        "paths[]=/form",
        "-d",
        "methods[]=GET",
        "-w",
        "\n%{http_code}",
    )
    assert out.stdout.endswith("201"), out.stdout
    # multipart
    out = curl(
        "-X",
        "POST",
        f"{admin}/services",
        "-F",
        "name=by-multipart",
        "-F",
        f"url=http://127.0.0.1:{upstream.port}/m",
        "-w",
        "\n%{http_code}",
    )
    assert out.stdout.endswith("201"), out.stdout
    out = curl(
        "-X",
        "POST",
        f"{admin}/routes",
        "-F",
        "paths[1]=/multi",
        "-F",
        "service.name=by-multipart",
        "-w",
        "\n%{http_code}",
    )
    assert out.stdout.endswith("201"), out.stdout

    for path, expected in (("/json/x", "GET /j/x"), ("/form/y", "GET /f/y"), ("/multi/z", "GET /m/z")):
        response = httpx.get(gateway.proxy_url + path)
        assert response.status_code == 200, (path, response.text)
        assert response.text == f"upstream ok {expected}\n"
        assert response.headers["via"] == "1.1 kong/3.9.1"
        assert REQUEST_ID.match(response.headers["x-kong-request-id"])
        assert int(response.headers["x-kong-upstream-latency"]) >= 0
        assert int(response.headers["x-kong-proxy-latency"]) >= 0
    assert httpx.post(gateway.proxy_url + "/form/y").status_code == 404  # methods=[GET]


def _service(gateway: GatewayProcess, upstream_port: int, path: str = "/", **extra: object) -> None:
    body = {"name": "svc", "url": f"http://127.0.0.1:{upstream_port}{path}", **extra}
    assert httpx.post(f"{gateway.admin_url}/services", json=body).status_code == 201
    assert httpx.post(f"{gateway.admin_url}/services/svc/routes", json={"paths": ["/"]}).status_code == 201


def test_forwarded_headers_and_host(gateway: GatewayProcess, upstream: NginxServer) -> None:
    _service(gateway, upstream.port)
    response = httpx.get(gateway.proxy_url + "/echo-host?q=1", headers={"X-Forwarded-For": "10.1.1.1"})
    assert response.status_code == 200
    assert response.text == "host=127.0.0.1 uri=/echo-host?q=1 xff=10.1.1.1, 127.0.0.1 via=1.1 kong/3.9.1\n"


def test_streamed_bodies_both_ways(gateway: GatewayProcess, upstream: NginxServer, tmp_path: pathlib.Path) -> None:
    _service(gateway, upstream.port)
    payload = tmp_path / "payload.bin"
    payload.write_bytes(b"y" * (10 * 1024 * 1024))
    # 10 MB Content-Length upload
    out = curl(
        "-X",
        "POST",
        "--data-binary",
        f"@{payload}",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        gateway.proxy_url + "/upload",
    )
    assert out.stdout == "200", out.stderr
    # chunked upload
    out = curl(
        "-X",
        "POST",
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        f"@{payload}",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        gateway.proxy_url + "/chunked",
    )
    assert out.stdout == "200", out.stderr
    upload = upstream.wait_for_log('"POST /upload HTTP/1.1"')[0]
    chunked = upstream.wait_for_log('"POST /chunked HTTP/1.1"')[0]
    assert int(upload.split()[-1]) > 10 * 1024 * 1024  # $request_length: head + the whole body arrived
    assert int(chunked.split()[-1]) > 10 * 1024 * 1024
    # 10 MB download
    out = curl("-o", str(tmp_path / "down.bin"), "-w", "%{http_code} %{size_download}", gateway.proxy_url + "/big")
    assert out.stdout == f"200 {10 * 1024 * 1024}"
    assert (tmp_path / "down.bin").read_bytes() == b"x" * (10 * 1024 * 1024)


def test_upstream_keepalive_reuses_one_connection(gateway: GatewayProcess, upstream: NginxServer) -> None:
    _service(gateway, upstream.port)
    with httpx.Client() as client:
        for i in range(20):
            assert client.get(f"{gateway.proxy_url}/k{i}").status_code == 200
    lines = upstream.wait_for_log('"GET /k', count=20)
    connections = {line.split()[1] for line in lines}
    requests_on_it = max(int(line.split()[2]) for line in lines)
    assert len(connections) == 1
    assert requests_on_it == 20


def test_generated_responses_match_kong(gateway: GatewayProcess) -> None:
    no_route = httpx.get(gateway.proxy_url + "/nothing-here")
    assert no_route.status_code == 404
    rid = no_route.headers["x-kong-request-id"]
    assert REQUEST_ID.match(rid)
    assert no_route.headers["content-type"] == "application/json; charset=utf-8"
    assert no_route.text == f'{{\n  "message":"no Route matched with those values",\n  "request_id":"{rid}"\n}}'
    assert no_route.headers["server"] == "kong/3.9.1"
    assert "via" not in no_route.headers
    assert int(no_route.headers["x-kong-response-latency"]) >= 0

    dead = closed_port()
    body = {"name": "dead", "url": f"http://127.0.0.1:{dead}/", "retries": 1}
    assert httpx.post(f"{gateway.admin_url}/services", json=body).status_code == 201
    assert httpx.post(f"{gateway.admin_url}/services/dead/routes", json={"paths": ["/dead"]}).status_code == 201
    bad_gateway = httpx.get(gateway.proxy_url + "/dead", headers={"Accept": "text/plain"})
    assert bad_gateway.status_code == 502
    rid = bad_gateway.headers["x-kong-request-id"]
    assert bad_gateway.text == f"An invalid response was received from the upstream server\nrequest_id: {rid}\n"
    log = gateway.error_log.read_text()
    expected = (
        r"\[error\] \d+#0: \*\d+ connect\(\) failed \(111: Connection refused\) while connecting to upstream, "
        rf'client: 127\.0\.0\.1, server: kong, request: "GET /dead HTTP/1\.1", '
        rf'upstream: "http://127\.0\.0\.1:{dead}/", '
        rf'host: "127\.0\.0\.1:{gateway.proxy_port}", request_id: "{rid}"'
    )
    assert len(re.findall(expected, log)) == 2, log  # retries = 1: two attempts, two lines


def test_read_timeout_gives_504(gateway: GatewayProcess) -> None:
    # A listener that never accepts: connect() completes in the kernel, no response ever comes.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        body = {"name": "slow", "url": f"http://127.0.0.1:{port}/", "read_timeout": 300, "retries": 0}
        assert httpx.post(f"{gateway.admin_url}/services", json=body).status_code == 201
        assert httpx.post(f"{gateway.admin_url}/services/slow/routes", json={"paths": ["/slow"]}).status_code == 201
        response = httpx.get(gateway.proxy_url + "/slow", headers={"Accept": "application/json"}, timeout=10)
    assert response.status_code == 504
    assert response.json()["message"] == "The upstream server is timing out"
    assert "upstream timed out (110: Connection timed out) while reading response header from upstream" in (
        gateway.error_log.read_text()
    )


def test_db_less_kong_yml_serves_the_same_routes(tmp_path: pathlib.Path, upstream: NginxServer) -> None:
    kong_yml = tmp_path / "kong.yml"
    kong_yml.write_text(
        f"""_format_version: "3.0"
services:
- name: svc
  url: http://127.0.0.1:{upstream.port}/base
  routes:
  - name: r
    paths: ["/declared"]
"""
    )
    gw = make_gateway(tmp_path, {"KONG_DATABASE": "off", "KONG_DECLARATIVE_CONFIG": str(kong_yml)}).start()
    try:
        response = httpx.get(gw.proxy_url + "/declared/thing")
        assert response.status_code == 200
        assert response.text == "upstream ok GET /base/thing\n"
        # POST /config replaces the whole configuration atomically
        replaced = httpx.post(
            f"{gw.admin_url}/config",
            json={
                "_format_version": "3.0",
                "services": [
                    {
                        "name": "svc2",
                        "url": f"http://127.0.0.1:{upstream.port}/other",
                        "routes": [{"name": "r2", "paths": ["/new"]}],
                    }
                ],
            },
        )
        assert replaced.status_code == 201, replaced.text
        assert httpx.get(gw.proxy_url + "/new/x").text == "upstream ok GET /other/x\n"
        assert httpx.get(gw.proxy_url + "/declared/thing").status_code == 404
    finally:
        assert gw.stop() == 0


def test_access_log_line_in_kong_format(gateway: GatewayProcess, upstream: NginxServer) -> None:
    _service(gateway, upstream.port)
    response = httpx.get(gateway.proxy_url + "/logged", headers={"User-Agent": "e2e-test"})
    rid = response.headers["x-kong-request-id"]
    gateway.stop()
    line = next(line for line in gateway.access_log.read_text().splitlines() if "/logged" in line)
    assert re.fullmatch(
        rf'127\.0\.0\.1 - - \[[^\]]+\] "GET /logged HTTP/1\.1" 200 \d+ "-" "e2e-test" kong_request_id: "{rid}"', line
    ), line
