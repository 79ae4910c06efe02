"""Keepalive HTTP -> HTTPS (verified, mutual TLS) through the gateway, pool on and off, next to nginx, one run.

Processes: an nginx mTLS upstream (1 worker, ``ssl_verify_client on`` against a generated root, ``return 200``);
two real ``gateway`` processes (one with the default upstream pool, one with ``upstream_keepalive_pool_size = 0``)
whose service is ``https://localhost:<upstream>`` with ``tls_verify = true``, the root as its ``ca_certificates``
and a ``client_certificate`` (leaf + intermediate), all created through the Admin API; and an nginx reverse proxy
(1 worker) configured the same way: ``proxy_ssl_verify on``, ``proxy_ssl_trusted_certificate`` the root,
``proxy_ssl_name localhost``, ``proxy_ssl_certificate`` the client chain, an upstream ``keepalive`` pool and
``proxy_ssl_session_reuse on`` (nginx's default). Each proxy listens in plain HTTP so only the upstream side is
TLS, and is loaded with ``wrk -t1 -c<connections> -d<duration>s`` (keepalive), interleaved; the median of
``--runs`` runs is printed for each. Access logs are off everywhere.

    python benchmarks/upstream_tls.py [--runs 3] [--duration 5] [--connections 50] [--only gateway,pool-off,nginx]

``--only`` also accepts ``plain-http``: the gateway in front of the same nginx over plain HTTP, as a baseline for
what the upstream TLS costs.

With the pool off, every request opens a new upstream TLS connection (resuming the cached session unless
``--no-session-reuse``), which is what the pool-off figure measures. What it cannot tell: behaviour with more than
one worker, or with an upstream far away.
"""

from __future__ import annotations

import argparse
import datetime
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
from typing import Any

UPSTREAM_CONF = """
worker_processes 1;
pid {prefix}/upstream.pid;
error_log {prefix}/upstream-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 100000;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_certificate {prefix}/server.pem;
        ssl_certificate_key {prefix}/server.key;
        ssl_client_certificate {prefix}/root.pem;
        ssl_verify_client on;
        ssl_verify_depth 3;
        location / {{ return 200 "ok\\n"; }}
    }}
    server {{
        listen 127.0.0.1:{plain_port};
        location / {{ return 200 "ok\\n"; }}
    }}
}}
"""

PROXY_CONF = """
worker_processes 1;
pid {prefix}/proxy.pid;
error_log {prefix}/proxy-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 100000;
    upstream backend {{
        server 127.0.0.1:{upstream_port};
        keepalive 512;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass https://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_ssl_server_name on;
            proxy_ssl_name localhost;
            proxy_ssl_verify on;
            proxy_ssl_verify_depth 1;
            proxy_ssl_trusted_certificate {prefix}/root.pem;
            proxy_ssl_certificate {prefix}/client.pem;
            proxy_ssl_certificate_key {prefix}/client.key;
            proxy_ssl_session_reuse on;
        }}
    }}
}}
"""


# ------------------------------------------------------------------------------------------------ certificates


def _pem(obj: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    if hasattr(obj, "public_bytes") and not hasattr(obj, "private_bytes"):
        return bytes(obj.public_bytes(serialization.Encoding.PEM))
    return bytes(
        obj.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


def make_pki(directory: Path) -> dict[str, str]:
    """root -> intermediate -> {server ``localhost``, client}; EC P-256. Writes the files nginx needs and returns
    the PEMs the Admin API needs."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def issue(cn: str, issuer: Any, ca: bool) -> tuple[Any, Any]:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer[0].subject if issuer else name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), critical=False)
        return builder.sign(issuer[1] if issuer else key, hashes.SHA256()), key

    root = issue("Bench Root CA", None, True)
    inter = issue("Bench Intermediate CA", root, True)
    server = issue("localhost", inter, False)
    client = issue("bench-client", inter, False)
    pems = {
        "root.pem": _pem(root[0]),
        "server.pem": _pem(server[0]) + _pem(inter[0]),
        "server.key": _pem(server[1]),
        "client.pem": _pem(client[0]) + _pem(inter[0]),
        "client.key": _pem(client[1]),
    }
    for name, data in pems.items():
        (directory / name).write_bytes(data)
    return {name: data.decode() for name, data in pems.items()}


# ------------------------------------------------------------------------------------------------ processes


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


def start_nginx(prefix: Path, name: str, conf: str, port: int) -> subprocess.Popen[bytes]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    path = prefix / f"{name}.conf"
    path.write_text(("user root;\n" if os.geteuid() == 0 else "") + conf)
    proc = subprocess.Popen([nginx, "-p", str(prefix), "-c", str(path), "-g", "daemon off;"], stderr=subprocess.DEVNULL)
    wait_port(port, proc)
    return proc


def admin(admin_port: int, path: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{admin_port}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        result: dict[str, Any] = json.loads(response.read())
        return result


def start_gateway(
    prefix: Path, upstream_port: int, pems: dict[str, str], env_extra: dict[str, str], plain: bool = False
) -> tuple[subprocess.Popen[bytes], int]:
    proxy_port, admin_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KONG_")}
    env.update(
        KONG_PROXY_LISTEN=f"127.0.0.1:{proxy_port}",
        KONG_ADMIN_LISTEN=f"127.0.0.1:{admin_port}",
        KONG_PROXY_ACCESS_LOG="off",
        **env_extra,
    )
    gateway = str(Path(sys.executable).with_name("gateway"))
    proc = subprocess.Popen([gateway, "start", "-p", str(prefix)], env=env, stdout=subprocess.DEVNULL)
    wait_port(admin_port, proc)  # the Admin API opens after the proxy listeners
    if plain:
        admin(admin_port, "/services", {"name": "bench", "url": f"http://127.0.0.1:{upstream_port}/"})
        admin(admin_port, "/services/bench/routes", {"paths": ["/"]})
        probe(proxy_port)
        return proc, proxy_port
    ca = admin(admin_port, "/ca_certificates", {"cert": pems["root.pem"]})
    cert = admin(admin_port, "/certificates", {"cert": pems["client.pem"], "key": pems["client.key"]})
    admin(
        admin_port,
        "/services",
        {
            "name": "bench",
            "url": f"https://localhost:{upstream_port}/",
            "tls_verify": True,
            "ca_certificates": [ca["id"]],
            "client_certificate": {"id": cert["id"]},
        },
    )
    admin(admin_port, "/services/bench/routes", {"paths": ["/"]})
    probe(proxy_port)
    return proc, proxy_port


def probe(port: int, timeout: float = 10.0) -> None:
    """The route is live once the snapshot is rebuilt: a 200 through the proxy (bounded)."""
    deadline = time.monotonic() + timeout
    status = 0
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                status = response.status
        except OSError as exc:
            status = getattr(exc, "code", 0)
        if status == 200:
            return
        time.sleep(0.02)
    raise RuntimeError(f"proxy on {port} never answered 200 (last status {status})")


def run_wrk(port: int, duration: int, connections: int) -> float:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", f"http://127.0.0.1:{port}/"],
        capture_output=True,
        text=True,
        timeout=duration + 30,
        check=True,
    ).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not match or "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    return float(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--only", default="gateway,pool-off,nginx", help="comma list of gateway, pool-off, nginx")
    parser.add_argument("--no-session-reuse", action="store_true", help="proxy_ssl_session_reuse = off (gateways)")
    args = parser.parse_args()
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None and not (tool == "nginx" and os.path.exists("/usr/sbin/nginx")):
            sys.exit(f"{tool} is required")
    wanted = [name.strip() for name in args.only.split(",") if name.strip()]
    reuse = {"KONG_PROXY_SSL_SESSION_REUSE": "off"} if args.no_session_reuse else {}
    procs: list[subprocess.Popen[bytes]] = []
    ports: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        pems = make_pki(root)
        upstream_port, plain_port = free_port(), free_port()
        try:
            conf = UPSTREAM_CONF.format(prefix=root, port=upstream_port, plain_port=plain_port)
            procs.append(start_nginx(root, "upstream", conf, upstream_port))
            if "gateway" in wanted:
                proc, ports["gateway"] = start_gateway(root / "gw-pool", upstream_port, pems, reuse)
                procs.append(proc)
            if "pool-off" in wanted:
                env = {"KONG_UPSTREAM_KEEPALIVE_POOL_SIZE": "0", **reuse}
                proc, ports["pool-off"] = start_gateway(root / "gw-nopool", upstream_port, pems, env)
                procs.append(proc)
            if "plain-http" in wanted:
                proc, ports["plain-http"] = start_gateway(root / "gw-plain", plain_port, pems, {}, plain=True)
                procs.append(proc)
            if "nginx" in wanted:
                ports["nginx"] = free_port()
                conf = PROXY_CONF.format(prefix=root, port=ports["nginx"], upstream_port=upstream_port)
                procs.append(start_nginx(root, "proxy", conf, ports["nginx"]))
                probe(ports["nginx"])
            results: dict[str, list[float]] = {name: [] for name in ports}
            for _ in range(args.runs):  # interleaved, so drift in machine load affects all alike
                for name, port in ports.items():
                    results[name].append(run_wrk(port, args.duration, args.connections))
        finally:
            for proc in reversed(procs):
                proc.send_signal(signal.SIGQUIT if proc.args[0].endswith("nginx") else signal.SIGTERM)  # type: ignore[index]
                proc.wait(timeout=20)
    for name, values in results.items():
        runs = ", ".join(f"{v:,.0f}" for v in values)
        print(f"{name:9s} median {statistics.median(values):>9,.0f} req/s   runs: {runs}", flush=True)


if __name__ == "__main__":
    main()
