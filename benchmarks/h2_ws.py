"""HTTP/2 keepalive requests and WebSocket round trips: the gateway next to nginx as the same proxy, one run.

    python -m benchmarks.h2_ws                 # 3 rounds per side
    python -m benchmarks.h2_ws --quick         # 1 short round: a sanity pass
    python -m benchmarks.h2_ws --output benchmarks/H2_WS.md

What it measures:

- **h2**: ``h2load`` (nghttp2-client) over TLS with ALPN ``h2``, ``-c 4 -m 10`` (4 connections, 10 concurrent
  streams each), keepalive, against each proxy; req/s as h2load reports it. The gateway: an ``http2 ssl`` proxy
  listener and a route to the upstream; nginx: ``listen ... ssl http2`` + ``proxy_pass`` with upstream keepalive.
- **ws**: one WebSocket client (the ``websockets`` library) sends 64-byte messages one after another through each
  proxy to a ``websockets`` echo server and times each round trip (median and p99 in microseconds); the same loop
  straight to the echo server gives the floor. nginx: ``proxy_http_version 1.1`` with ``Upgrade``/``Connection``
  set from the client's, as Kong's template does.

Both proxies run one worker, the same certificate (ECDSA P-256), access logs off; the upstream is one nginx
(``return 200``) for h2 and one echo server for ws. Rounds alternate between the two proxies. Everything is on
loopback and bounded; every process started is stopped on exit.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import yaml
from websockets.sync.client import connect
from websockets.sync.server import ServerConnection, serve

from benchmarks.pki import Pki, make_pki
from benchmarks.processes import Processes, Server, free_port

__all__ = ["main"]

MESSAGE = b"m" * 64


def upstream_conf(prefix: Path, port: int) -> str:
    return f"""
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    server {{ listen 127.0.0.1:{port}; location / {{ return 200 "ok"; }} }}
}}
"""


def nginx_proxy_conf(prefix: Path, port: int, upstream: int, echo: int, pki: Pki) -> str:
    return f"""
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    keepalive_requests 1000000;  # h2load does not reconnect after nginx's GOAWAY at 1000 requests (the default)
    upstream up {{ server 127.0.0.1:{upstream}; keepalive 60; }}
    map $http_upgrade $upstream_connection {{ default keep-alive; websocket "keep-alive, Upgrade"; }}
    server {{
        listen 127.0.0.1:{port} ssl http2;
        ssl_certificate {pki.server_chain};
        ssl_certificate_key {pki.server_key};
        location / {{
            proxy_http_version 1.1;
            proxy_set_header Connection "keep-alive";
            proxy_pass http://up;
        }}
        location /ws {{
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $upstream_connection;
            proxy_pass http://127.0.0.1:{echo};
        }}
    }}
}}
"""


def gateway_config(upstream: int, echo: int, pki: Pki) -> dict[str, object]:
    return {
        "_format_version": "3.0",
        "certificates": [{"cert": pki.pems["server_chain"], "key": pki.pems["server_key"], "snis": [{"name": "*"}]}],
        "services": [
            {"name": "up", "url": f"http://127.0.0.1:{upstream}", "routes": [{"name": "root", "paths": ["/"]}]},
            {"name": "echo", "url": f"http://127.0.0.1:{echo}", "routes": [{"name": "ws", "paths": ["/ws"]}]},
        ],
    }


class EchoServer:
    """A ``websockets`` echo server in a thread of this process (the same upstream for both proxies)."""

    def __init__(self) -> None:
        self.server = serve(self._echo, "127.0.0.1", 0, compression=None)
        self.port = self.server.socket.getsockname()[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @staticmethod
    def _echo(ws: ServerConnection) -> None:
        for message in ws:
            ws.send(message)

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(5)


@dataclass
class WsRun:
    median_us: float
    p99_us: float


def h2load(port: int, requests: int) -> float:
    """req/s of one h2load run (``-c 4 -m 10``); fails loudly on any failed request."""
    out = subprocess.run(
        ["h2load", "-n", str(requests), "-c", "4", "-m", "10", f"https://127.0.0.1:{port}/"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", out)
    rate = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    if done is None or rate is None or done.group(1) != done.group(2) or int(done.group(1)) != requests:
        raise RuntimeError(f"h2load on {port}: {out}")
    if "2xx" in out and not re.search(rf"status codes: {requests} 2xx", out):
        raise RuntimeError(f"h2load on {port}: non-2xx answers: {out}")
    return float(rate.group(1))


def ws_round_trips(url: str, messages: int) -> WsRun:
    """Send ``messages`` one after another, each after the previous echo: the round trips' median and p99."""
    import ssl

    ctx = None
    if url.startswith("wss"):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    times: list[float] = []
    with connect(url, ssl=ctx, proxy=None, compression=None, open_timeout=15) as client:
        for _ in range(50):  # warm-up
            client.send(MESSAGE)
            client.recv(timeout=15)
        for _ in range(messages):
            start = time.perf_counter()
            client.send(MESSAGE)
            if client.recv(timeout=15) != MESSAGE:
                raise RuntimeError(f"{url}: the echo differs")
            times.append(time.perf_counter() - start)
    times.sort()
    return WsRun(statistics.median(times) * 1e6, times[int(len(times) * 0.99)] * 1e6)


def measure(requests: int, messages: int, rounds: int) -> tuple[dict[str, list[float]], dict[str, list[WsRun]]]:
    h2: dict[str, list[float]] = {}
    ws: dict[str, list[WsRun]] = {}
    echo = EchoServer()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-h2ws-") as tmp, Processes() as procs:
            work = Path(tmp)
            pki = make_pki(work / "pki", "ecdsa")
            upstream = free_port()
            procs.nginx(work / "upstream", upstream_conf(work / "upstream", upstream), upstream)
            ng_port, gw_port = free_port(), free_port()
            conf = nginx_proxy_conf(work / "proxy", ng_port, upstream, echo.port, pki)
            nginx: Server = procs.nginx(work / "proxy", conf, ng_port)
            kong_yml = work / "kong.yml"
            kong_yml.write_text(yaml.safe_dump(gateway_config(upstream, echo.port, pki)))
            env = {
                "KONG_DATABASE": "off",
                "KONG_DECLARATIVE_CONFIG": str(kong_yml),
                "KONG_PROXY_LISTEN": f"127.0.0.1:{gw_port} http2 ssl",
                "KONG_ADMIN_LISTEN": f"127.0.0.1:{free_port()}",
                "KONG_WORKER_PROCESSES": "1",
                "KONG_LOG_LEVEL": "warn",
                "KONG_PROXY_ACCESS_LOG": "off",
            }
            gateway = procs.gateway(work / "gateway", env, gw_port)
            ports = {"gateway": gateway.port, "nginx": nginx.port}
            for port in ports.values():  # warm-up, and a check that both paths work
                h2load(port, min(requests, 2000))
                ws_round_trips(f"wss://127.0.0.1:{port}/ws", 100)
            ws.setdefault("direct", []).append(ws_round_trips(f"ws://127.0.0.1:{echo.port}/", messages))
            for index in range(rounds):
                order = ("gateway", "nginx") if index % 2 == 0 else ("nginx", "gateway")
                for side in order:
                    rate = h2load(ports[side], requests)
                    h2.setdefault(side, []).append(rate)
                    run = ws_round_trips(f"wss://127.0.0.1:{ports[side]}/ws", messages)
                    ws.setdefault(side, []).append(run)
                    print(f"  round {index + 1} {side:7} h2 {rate:9.0f} req/s   ws rtt {run.median_us:7.0f} us")
    finally:
        echo.stop()
    return h2, ws


def render(h2: dict[str, list[float]], ws: dict[str, list[WsRun]], requests: int, messages: int, rounds: int) -> str:
    gw_h2, ng_h2 = statistics.median(h2["gateway"]), statistics.median(h2["nginx"])
    lines = [
        "# HTTP/2 and WebSockets: the gateway next to nginx",
        "",
        f"`python -m benchmarks.h2_ws` ({rounds} round(s) per side, medians; h2load -n {requests} -c 4 -m 10 over",
        f"TLS + ALPN h2; {messages} sequential 64-byte WebSocket messages over wss). One worker each, ECDSA P-256.",
        "",
        "| measure | gateway | nginx | ratio (gateway / nginx) |",
        "|---|---|---|---|",
        f"| h2 keepalive req/s | {gw_h2:,.0f} | {ng_h2:,.0f} | {gw_h2 / ng_h2:.2f} |",
    ]
    for label, pick in (("median", lambda r: r.median_us), ("p99", lambda r: r.p99_us)):
        gw = statistics.median(pick(r) for r in ws["gateway"])
        ng = statistics.median(pick(r) for r in ws["nginx"])
        lines.append(f"| wss round trip {label}, us | {gw:,.0f} | {ng:,.0f} | {gw / ng:.2f} |")
    direct = ws["direct"][0]
    lines += [
        "",
        f"The echo server reached directly (ws, no proxy): median {direct.median_us:,.0f} us, p99 "
        f"{direct.p99_us:,.0f} us.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.h2_ws", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="one short round")
    parser.add_argument("--output", type=Path, help="write the Markdown table there")
    args = parser.parse_args(argv)
    requests, messages, rounds = (5000, 500, 1) if args.quick else (50000, 3000, 3)
    h2, ws = measure(requests, messages, rounds)
    table = render(h2, ws, requests, messages, rounds)
    print(table)
    if args.output is not None:
        args.output.write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
