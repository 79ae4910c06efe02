"""Stream throughput: bulk transfers through TLS termination and TLS passthrough, the gateway next to nginx's stream.

    python -m benchmarks.stream               # 256 MiB per transfer, 3 rounds per side
    python -m benchmarks.stream --quick       # 64 MiB, 1 round: a short pass
    python -m benchmarks.stream --output benchmarks/STREAM.md

What it measures: ``curl`` downloads one file over HTTPS through each proxy (to ``/dev/null``), and reports curl's
average download speed in MB/s and the proxy's CPU seconds per GiB moved. The upstream is one nginx serving the file
over plain HTTP (behind termination) and over HTTPS with its own certificate (behind passthrough).

- **termination**: the client's TLS ends at the proxy, which relays plaintext to the HTTP upstream. Gateway: a ``tls``
  stream route on an ``ssl`` stream listener. nginx: ``listen ... ssl`` + ``proxy_pass`` in its stream module.
- **passthrough**: the proxy reads the SNI and relays the ciphertext to the HTTPS upstream. Gateway: a
  ``tls_passthrough`` route on the same listener. nginx: ``ssl_preread on`` + ``map $ssl_preread_server_name``.

Both proxies run one worker, with the same certificate (ECDSA P-256); the gateway is the real ``gateway start``
process, DB-less. Rounds alternate between the two, so neither always gets the warmer machine. Everything is on
loopback and bounded; every process started is stopped on exit.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from benchmarks.pki import Pki, make_pki
from benchmarks.processes import Processes, Server, free_port, nginx_binary

__all__ = ["main"]

GIB = 1 << 30


def stream_module_directive() -> str:
    """``load_module`` for nginx's stream module when it is dynamic (Debian: ``libnginx-mod-stream``)."""
    info = subprocess.run([nginx_binary(), "-V"], capture_output=True, text=True, timeout=10).stderr
    if re.search(r"--with-stream(\s|$)", info):
        return ""
    match = re.search(r"--modules-path=(\S+)", info)
    module = Path(match.group(1) if match else "/usr/lib/nginx/modules") / "ngx_stream_module.so"
    if not module.exists():
        sys.exit(f"nginx has no stream module ({module} is missing): make system-deps")
    return f"load_module {module};\n"


def upstream_conf(prefix: Path, plain: int, tls: int, pki: Pki, files: Path) -> str:
    return f"""
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    server {{ listen 127.0.0.1:{plain}; root {files}; }}
    server {{
        listen 127.0.0.1:{tls} ssl;
        ssl_certificate {pki.server_chain};
        ssl_certificate_key {pki.server_key};
        root {files};
    }}
}}
"""


def nginx_proxy_conf(prefix: Path, term: int, passthrough: int, plain: int, tls: int, pki: Pki) -> str:
    return f"""{stream_module_directive()}
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
stream {{
    map $ssl_preread_server_name $passthrough {{ default 127.0.0.1:{tls}; }}
    server {{
        listen 127.0.0.1:{term} ssl;
        ssl_certificate {pki.server_chain};
        ssl_certificate_key {pki.server_key};
        proxy_pass 127.0.0.1:{plain};
    }}
    server {{
        listen 127.0.0.1:{passthrough};
        ssl_preread on;
        proxy_pass $passthrough;
    }}
}}
"""


def gateway_config(plain: int, tls: int, pki: Pki) -> dict[str, object]:
    return {
        "_format_version": "3.0",
        "certificates": [
            {"cert": pki.pems["server_chain"], "key": pki.pems["server_key"], "snis": [{"name": "term.test"}]}
        ],
        "services": [
            {
                "name": "plain",
                "url": f"tcp://127.0.0.1:{plain}",
                "routes": [{"name": "term", "protocols": ["tls"], "snis": ["term.test"]}],
            },
            {
                "name": "tls",
                "url": f"tcp://127.0.0.1:{tls}",
                "routes": [{"name": "pass", "protocols": ["tls_passthrough"], "snis": ["pass.test"]}],
            },
        ],
    }


@dataclass
class Run:
    mbps: float
    cpu_per_gib: float


def download(server: Server, port: int, name: str, size: int) -> Run:
    """One bulk download through ``server`` (SNI ``name``): curl's speed, and the proxy's CPU for it."""
    before = server.stats().cpu_seconds
    out = subprocess.run(
        [
            "curl",
            "-sS",
            "-k",
            "--max-time",
            "120",
            "-o",
            "/dev/null",
            "-w",
            "%{speed_download} %{size_download}",
            "--resolve",
            f"{name}:{port}:127.0.0.1",
            f"https://{name}:{port}/bulk.bin",
        ],
        capture_output=True,
        text=True,
        timeout=130,
        check=True,
    ).stdout.split()
    cpu = server.stats().cpu_seconds - before
    speed, got = float(out[0]), int(out[1])
    if got != size:
        raise RuntimeError(f"{server.name} {name}: {got} bytes of {size}")
    return Run(speed / 1e6, cpu / (size / GIB))


def measure(size_mib: int, rounds: int) -> dict[tuple[str, str], list[Run]]:
    size = size_mib << 20
    results: dict[tuple[str, str], list[Run]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-stream-") as tmp, Processes() as procs:
        work = Path(tmp)
        pki = make_pki(work / "pki", "ecdsa")
        files = work / "files"
        files.mkdir()
        (files / "bulk.bin").write_bytes(bytes(range(256)) * (size // 256))
        plain, tls = free_port(), free_port()
        procs.nginx(work / "upstream", upstream_conf(work / "upstream", plain, tls, pki, files), plain)
        term, passthrough, gw_port = free_port(), free_port(), free_port()
        proxy = procs.nginx(work / "proxy", nginx_proxy_conf(work / "proxy", term, passthrough, plain, tls, pki), term)
        kong_yml = work / "kong.yml"
        kong_yml.write_text(yaml.safe_dump(gateway_config(plain, tls, pki)))
        env = {
            "KONG_DATABASE": "off",
            "KONG_DECLARATIVE_CONFIG": str(kong_yml),
            "KONG_PROXY_LISTEN": f"127.0.0.1:{free_port()}",
            "KONG_ADMIN_LISTEN": f"127.0.0.1:{free_port()}",
            "KONG_STREAM_LISTEN": f"127.0.0.1:{gw_port} ssl",
            "KONG_WORKER_PROCESSES": "1",
            "KONG_LOG_LEVEL": "warn",
        }
        gateway = procs.gateway(work / "gateway", env, gw_port)
        targets = {
            ("gateway", "termination"): (gateway, gw_port, "term.test"),
            ("gateway", "passthrough"): (gateway, gw_port, "pass.test"),
            ("nginx", "termination"): (proxy, term, "term.test"),
            ("nginx", "passthrough"): (proxy, passthrough, "pass.test"),
        }
        for server, port, name in targets.values():  # warm-up, and a check that every path works
            download(server, port, name, size)
        for index in range(rounds):
            order = ("gateway", "nginx") if index % 2 == 0 else ("nginx", "gateway")
            for mode in ("termination", "passthrough"):
                for side in order:
                    server, port, name = targets[(side, mode)]
                    run = download(server, port, name, size)
                    results.setdefault((side, mode), []).append(run)
                    print(
                        f"  round {index + 1} {mode:11} {side:7} {run.mbps:8.1f} MB/s  {run.cpu_per_gib:5.2f} CPU s/GiB"
                    )
    return results


def render(results: dict[tuple[str, str], list[Run]], size_mib: int, rounds: int) -> str:
    lines = [
        "# Stream throughput: the gateway next to nginx's stream module",
        "",
        f"`python -m benchmarks.stream` ({size_mib} MiB per download, {rounds} round(s) per side, medians). One worker",
        "each, ECDSA P-256, curl over HTTPS on loopback; CPU is the proxy process's own.",
        "",
        "| mode | gateway MB/s | nginx MB/s | ratio | gateway CPU s/GiB | nginx CPU s/GiB |",
        "|---|---|---|---|---|---|",
    ]
    for mode in ("termination", "passthrough"):
        gw, ng = results[("gateway", mode)], results[("nginx", mode)]
        gw_mbps, ng_mbps = statistics.median(r.mbps for r in gw), statistics.median(r.mbps for r in ng)
        gw_cpu, ng_cpu = statistics.median(r.cpu_per_gib for r in gw), statistics.median(r.cpu_per_gib for r in ng)
        lines.append(
            f"| {mode} | {gw_mbps:.0f} | {ng_mbps:.0f} | {gw_mbps / ng_mbps:.2f} | {gw_cpu:.2f} | {ng_cpu:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.stream", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="64 MiB, 1 round")
    parser.add_argument("--output", type=Path, help="write the Markdown table there")
    args = parser.parse_args(argv)
    size_mib, rounds = (64, 1) if args.quick else (256, 3)
    results = measure(size_mib, rounds)
    table = render(results, size_mib, rounds)
    print(table)
    if args.output is not None:
        args.output.write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
