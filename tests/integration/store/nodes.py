"""Two gateway processes sharing one PostgreSQL database, and a small HTTP(S) upstream for them to proxy to."""

from __future__ import annotations

import contextlib
import http.server
import pathlib
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from tests.fixtures.certs import Issued
from tests.fixtures.gateway_process import GatewayProcess, make_gateway, run_cli
from tests.fixtures.postgres import PgServer

__all__ = ["eventually", "gateway_nodes", "upstream"]


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"hello from upstream\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@contextlib.contextmanager
def upstream(identity: Issued | None = None, tmp: pathlib.Path | None = None) -> Iterator[int]:
    """An HTTP upstream answering 200 on 127.0.0.1 (HTTPS with ``identity``); yields its port."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    if identity is not None:
        assert tmp is not None
        (tmp / "up.crt").write_text(identity.chain_pem)
        (tmp / "up.key").write_text(identity.key_pem)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(tmp / "up.crt", tmp / "up.key")
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def eventually(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``check`` until it holds (a deadline, no fixed sleep); returns the seconds it took."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(0.02)  # between polls, not a readiness guess
    return time.monotonic() - started


@contextlib.contextmanager
def gateway_nodes(
    server: PgServer, tmp_path: pathlib.Path, database: str | None = None, count: int = 2, **settings: str
) -> Iterator[list[GatewayProcess]]:
    """``count`` started gateways (plain and ssl proxy listeners) on one bootstrapped database."""
    database = database or server.create_database()
    env = {**server.env(database, **{k: str(v) for k, v in settings.items()})}
    boot = run_cli("migrations", "bootstrap", env={**_base_env(), **env})
    assert boot.returncode == 0, boot.stderr
    nodes = []
    try:
        for index in range(count):
            node_dir = tmp_path / f"node{index}"
            node_dir.mkdir()
            nodes.append(make_gateway(node_dir, env, ssl=True).start())
        yield nodes
    finally:
        for node in nodes:
            node.stop()


def _base_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("KONG_")}
