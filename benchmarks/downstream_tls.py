"""Keepalive HTTPS -> HTTP through the gateway, next to nginx doing the same, in one run on one machine.

Three processes: an nginx upstream (1 worker, ``return 200``), the real ``gateway`` (one process: an ``ssl`` proxy
listener, a service + route to that upstream created through its Admin API) and an nginx TLS reverse proxy (1
worker, the gateway's own default certificate, ``proxy_pass`` with an upstream ``keepalive`` pool, HTTP/1.1). Both
proxies are loaded with ``wrk -t1 -c<connections> -d<duration>s https://127.0.0.1:<port>/`` (keepalive, so this
measures the data path: TLS records, HTTP parsing, routing, the pooled upstream request), interleaved, and the
median of ``--runs`` runs is printed for each, with the ratio. Access logs are off on both sides (Kong writes one
by default; ``--access-log`` turns the gateway's on to see its cost).

    python benchmarks/downstream_tls.py [--runs 3] [--duration 5] [--connections 50] [--access-log] [--plain]

What it cannot tell: full handshakes (``openssl s_time -new``), or behaviour with more than one worker.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

NGINX_CONF = """
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 100000;
    upstream backend {{
        server 127.0.0.1:{upstream_port};
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{upstream_port};
        location / {{ return 200 "ok\\n"; }}
    }}
    server {{
        listen 127.0.0.1:{proxy_port} ssl;
        listen 127.0.0.1:{plain_port};
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """Connect attempts until something accepts (no fixed delay); fail fast if ``proc`` died."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on {port}") from None
            time.sleep(0.02)


def run_wrk(port: int, duration: int, connections: int, scheme: str = "https") -> float:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", f"{scheme}://127.0.0.1:{port}/"],
        capture_output=True,
        text=True,
        timeout=duration + 30,
        check=True,
    ).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not match or "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    return float(match.group(1))


def admin_post(admin_port: int, path: str, body: dict[str, object]) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{admin_port}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201, response.read()


def start_gateway(
    prefix: Path, upstream_port: int, access_log: bool, plain_port: int
) -> tuple[subprocess.Popen[bytes], int]:
    ssl_port, admin_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KONG_")}
    env.update(
        KONG_PROXY_LISTEN=f"127.0.0.1:{ssl_port} ssl, 127.0.0.1:{plain_port}",
        KONG_ADMIN_LISTEN=f"127.0.0.1:{admin_port}",
        KONG_PROXY_ACCESS_LOG="logs/access.log" if access_log else "off",
    )
    gateway = str(Path(sys.executable).with_name("gateway"))
    proc = subprocess.Popen(
        [gateway, "start", "-p", str(prefix)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_port(admin_port, proc)  # the Admin API opens after the proxy listeners
        admin_post(admin_port, "/services", {"name": "bench", "url": f"http://127.0.0.1:{upstream_port}"})
        admin_post(admin_port, "/services/bench/routes", {"paths": ["/"]})
        deadline = time.monotonic() + 10
        while True:  # the route is live once the snapshot is rebuilt: probe it
            code = subprocess.run(
                ["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", f"https://127.0.0.1:{ssl_port}/"],
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout
            if code == "200":
                return proc, ssl_port
            if time.monotonic() > deadline:
                raise RuntimeError(f"gateway route not live (last status {code})")
    except BaseException:
        proc.kill()
        proc.wait()
        raise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--access-log", action="store_true", help="keep the gateway's access log on")
    parser.add_argument("--plain", action="store_true", help="also measure plain HTTP on both, for the TLS cost")
    args = parser.parse_args()
    for tool in ("wrk", "nginx", "curl"):
        if shutil.which(tool) is None and not (tool == "nginx" and os.path.exists("/usr/sbin/nginx")):
            sys.exit(f"{tool} is required")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        upstream_port, nginx_port = free_port(), free_port()
        gateway_plain, nginx_plain = free_port(), free_port()
        # the gateway generates Kong's default pair under its prefix; nginx serves the same certificate
        from gateway.tls.defaults import ensure_default_certificates

        ensure_default_certificates(str(root / "gateway"))
        ssl_dir = root / "gateway" / "ssl"
        conf = NGINX_CONF.format(
            prefix=root,
            upstream_port=upstream_port,
            proxy_port=nginx_port,
            plain_port=nginx_plain,
            cert=ssl_dir / "kong-default.crt",
            key=ssl_dir / "kong-default.key",
        )
        (root / "nginx.conf").write_text(("user root;\n" if os.geteuid() == 0 else "") + conf)
        nginx_proc = subprocess.Popen(
            [nginx, "-p", str(root), "-c", str(root / "nginx.conf"), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        gateway = None
        try:
            wait_port(nginx_port, nginx_proc)
            wait_port(upstream_port, nginx_proc)
            gateway, gateway_port = start_gateway(root / "gateway", upstream_port, args.access_log, gateway_plain)
            targets = {"gateway": (gateway_port, "https"), "nginx": (nginx_port, "https")}
            if args.plain:
                targets.update({"gateway-http": (gateway_plain, "http"), "nginx-http": (nginx_plain, "http")})
            results: dict[str, list[float]] = {name: [] for name in targets}
            for _ in range(args.runs):  # interleaved, so drift in machine load affects all alike
                for name, (port, scheme) in targets.items():
                    results[name].append(run_wrk(port, args.duration, args.connections, scheme))
        finally:
            if gateway is not None:
                gateway.send_signal(signal.SIGTERM)
                gateway.wait(timeout=30)
            nginx_proc.send_signal(signal.SIGQUIT)
            nginx_proc.wait(timeout=10)
    medians = {name: statistics.median(values) for name, values in results.items()}
    for name, values in results.items():
        runs = ", ".join(f"{v:,.0f}" for v in values)
        print(f"{name:12s} median {medians[name]:>9,.0f} req/s   runs: {runs}")
    print(f"gateway / nginx (https) = {medians['gateway'] / medians['nginx']:.2f}")
    if args.plain:
        print(f"gateway / nginx (http)  = {medians['gateway-http'] / medians['nginx-http']:.2f}")


if __name__ == "__main__":
    main()
