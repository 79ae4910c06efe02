"""Where S5's gap to nginx lies: the gateway next to its own TLS layers alone, the floor and nginx, in one run.

    python -m benchmarks.s5_split [--key rsa|ecdsa] [--rounds 5] [--duration 4] [--plain]
    python -m benchmarks.s5_split --serve PORT --cert CHAIN --key-file KEY      (the TLS-layers-only server)

Four servers under S5's load (a new TLS connection per request, full handshakes, ``Connection: close``), each
round in a rotated order as ``benchmarks.compare`` runs them: nginx, the floor (``floor.py``), the gateway, and
**tls-only**: the gateway's own ``ssl`` listener - ``TlsListener`` with its servername callback, ``FirstBytes``,
``TlsProtocol``, ``TlsSession`` and ``TlsTransport``, configured as S5 configures the gateway (session tickets and
cache off) - whose app answers the first bytes of the request with a fixed 200 and closes (close_notify first):
no HTTP parsing, routing, upstream or headers. Hence, per connection:

- ``tls-only - floor``: what the gateway's TLS layers cost beyond the least a Python TLS server costs;
- ``gateway - tls-only``: what its HTTP/proxy path (parse, route, pooled upstream, response, close) costs in S5.

``--plain`` adds plain HTTP with a new connection per request (S1's load with ``Connection: close``) for the
gateway, the floor and nginx: the same per-connection HTTP path with no handshake between two connections.
Measured on 2026-12-07 (``benchmarks/TUNING.md``, "Issue 15: where S5-rsa's gap lies"): tls-only ran at the floor's
rate and CPU, the gateway ~100 us per connection above it, against ~19 us without TLS (``--plain``).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import io
import signal
import statistics
import sys
import tempfile
from pathlib import Path

from benchmarks.processes import Processes, Server, free_port, probe
from benchmarks.run import prepare_environment
from benchmarks.scenarios import (
    SCENARIOS,
    Environment,
    Scenario,
    drive,
    rotated_rounds,
    start_floor,
    start_gateway,
    start_nginx_proxy,
    url_of,
)

__all__ = ["RESPONSE", "CannedApp", "Figures", "main", "serve", "split_lines", "start_tls_only", "tls_only_argv"]

#: the tls-only server's answer: the upstream's 24-byte body, as the proxies return it
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: tls-only\r\nContent-Type: application/octet-stream\r\nContent-Length: 24\r\n"
    b"Connection: close\r\n\r\nhello from the upstream\n"
)


class CannedApp(asyncio.Protocol):
    """The app behind the gateway's TLS layers in the tls-only server: one fixed response per connection, then
    ``close()`` (the TLS transport sends its close_notify after the response, as the gateway does for S5)."""

    __slots__ = ("transport",)

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(RESPONSE)
            transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def serve(port: int, cert: Path, key: Path, ready: asyncio.Event | None = None) -> None:
    """The tls-only server on 127.0.0.1:``port`` until SIGTERM/SIGINT (or cancellation)."""
    from gateway.downstream.tls_listener import TlsListener
    from gateway.observability.accesslog import AccessLog
    from gateway.observability.errorlog import ErrorLog
    from gateway.proxy.state import ProxyState
    from gateway.runtime.snapshot import build_snapshot
    from gateway.settings import Listener, load_settings

    with tempfile.TemporaryDirectory(prefix="tls-only-") as prefix:
        overrides = {
            "prefix": prefix,
            "proxy_listen": f"127.0.0.1:{port} ssl",
            "admin_listen": "off",
            "proxy_access_log": "off",
            "ssl_cert": str(cert),
            "ssl_cert_key": str(key),
            "ssl_session_tickets": "off",  # S5: every handshake a full one (``scenarios.start_gateway``)
            "ssl_session_cache_size": "0",
        }
        settings = load_settings(env={}, overrides=overrides)
        state = ProxyState(
            settings, ErrorLog(None, stream=io.StringIO()), AccessLog(None), build_snapshot({}, settings)
        )
        listener = settings.proxy_listen[0]
        assert isinstance(listener, Listener) and listener.ssl
        loop = asyncio.get_running_loop()
        tls = TlsListener(state, listener, CannedApp, loop)
        server = await loop.create_server(tls.protocol_factory, "127.0.0.1", port, backlog=1024)
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        if ready is not None:
            ready.set()
        try:
            await stop.wait()
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
            server.close()
            await server.wait_closed()
            state.close()


def start_tls_only(procs: Processes, scenario: Scenario, env: Environment) -> Server:
    """The tls-only server on ``scenario``'s certificate (a process, like the others; ready when its port accepts)."""
    served = env.pki[scenario.downstream_tls or "ecdsa"]
    port = free_port()
    log = env.workdir / scenario.key / "tls-only.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    return procs.spawn("the tls-only server", tls_only_argv(port, served.server_chain, served.server_key), port, log)


def tls_only_argv(port: int, cert: Path, key: Path) -> list[str]:
    """The command line of the tls-only server on ``port`` serving ``cert``/``key``."""
    argv = [sys.executable, "-m", "benchmarks.s5_split", "--serve", str(port)]
    return [*argv, "--cert", str(cert), "--key-file", str(key)]


@dataclasses.dataclass
class Figures:
    """One server's medians over the rounds."""

    rate: float  # requests (handshakes) per second
    cpu_us: float  # server CPU per request (connection)


def split_lines(figures: dict[str, Figures]) -> list[str]:
    """The differences the run is for, per connection (``tls-only`` and ``floor`` where they ran)."""
    lines = []
    gateway, floor, tls_only = figures.get("gateway"), figures.get("floor"), figures.get("tls-only")
    if tls_only is not None and floor is not None:
        tls_layers = tls_only.cpu_us - floor.cpu_us
        lines.append(f"the gateway's TLS layers beyond the floor (tls-only - floor): {tls_layers:+.1f} us")
    if gateway is not None and tls_only is not None:
        lines.append(f"its HTTP/proxy path (gateway - tls-only): {gateway.cpu_us - tls_only.cpu_us:+.1f} us")
    elif gateway is not None and floor is not None:
        lines.append(f"the gateway beyond the floor (gateway - floor): {gateway.cpu_us - floor.cpu_us:+.1f} us")
    return lines


def _run(scenario: Scenario, env: Environment, servers: dict[str, Server], rounds: int, duration: float) -> None:
    for server in servers.values():
        probe(url_of(scenario, server))
        drive(scenario, env, server, 1.0)
    rates: dict[str, list[float]] = {name: [] for name in servers}
    cpu: dict[str, list[float]] = {name: [] for name in servers}
    for _, name, m in rotated_rounds(scenario, env, servers, rounds, duration):
        rates[name].append(m.load.rps)
        cpu[name].append(m.cpu_us_per_request)
    figures = {name: Figures(statistics.median(rates[name]), statistics.median(cpu[name])) for name in servers}
    base = figures["nginx"].rate
    print(f"{scenario.key} ({scenario.title}), {rounds} rounds of {duration:g} s, medians:")
    for name, fig in figures.items():
        print(f"  {name:9s} {fig.rate:>9,.0f} /s  ratio {fig.rate / base:.3f}  cpu {fig.cpu_us:6.1f} us per connection")
    for line in split_lines(figures):
        print(f"  {line}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--key", choices=("rsa", "ecdsa"), default="rsa", help="S5-rsa or S5-ecdsa")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--plain", action="store_true", help="also plain HTTP, a new connection per request")
    parser.add_argument("--serve", type=int, metavar="PORT", help="run the tls-only server (what the run starts)")
    parser.add_argument("--cert", type=Path)
    parser.add_argument("--key-file", type=Path)
    args = parser.parse_args(argv)
    if args.serve is not None:
        if args.cert is None or args.key_file is None:
            parser.error("--serve needs --cert and --key-file")
        import uvloop

        uvloop.run(serve(args.serve, args.cert, args.key_file))
        return
    s5 = next(s for s in SCENARIOS if s.key == f"S5-{args.key}")
    with tempfile.TemporaryDirectory() as tmp, prepare_environment(Path(tmp)) as (env, _), Processes() as procs:
        servers = {
            "nginx": start_nginx_proxy(procs, s5, env),
            "floor": start_floor(procs, s5, env),
            "gateway": start_gateway(procs, s5, env),
            "tls-only": start_tls_only(procs, s5, env),
        }
        _run(s5, env, servers, args.rounds, args.duration)
        if args.plain:
            s1 = next(s for s in SCENARIOS if s.key == "S1")
            plain = dataclasses.replace(s1, key="S1-close", title="S1 with Connection: close", headers=s5.headers)
            servers = {
                "nginx": start_nginx_proxy(procs, plain, env),
                "floor": start_floor(procs, plain, env),
                "gateway": start_gateway(procs, plain, env),
            }
            _run(plain, env, servers, args.rounds, args.duration)


if __name__ == "__main__":
    main()
