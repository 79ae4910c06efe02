"""In-process stream proxy for tests: ``ProxyState`` + the stream listeners on free loopback ports, and real peers.

``running_stream(tmp_path, cfg)`` starts one plain and one ``ssl`` stream listener (their ports are chosen before the
configuration is written, so routes can name them in ``destinations``); the configuration is Kong-shaped rows
(``tests.integration.proxy.harness`` builds services and routes). Peers: ``line_server`` (an upstream answering one
line and closing), ``echo_server``, ``s_client`` (``openssl s_client`` with input, run off the loop) and
``split_hello_exchange`` (a TLS client whose ClientHello leaves in 1-byte TCP segments). Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import io
import re
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509

from gateway.observability.accesslog import AccessLog
from gateway.observability.errorlog import ErrorLog
from gateway.proxy.state import ProxyState
from gateway.runtime.snapshot import build_snapshot
from gateway.settings import load_settings
from gateway.stream.listener import StreamFront
from tests.fixtures.ports import free_port

__all__ = [
    "StreamGateway",
    "echo_server",
    "line_server",
    "running_stream",
    "s_client",
    "split_hello_exchange",
]

TIMEOUT = 10.0
_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\n?", re.S)


class StreamGateway:
    """A running in-process stream proxy: ``plains`` and ``ssl`` are its listeners' ports (``plain``: the first)."""

    def __init__(self, state: ProxyState, plains: list[int], ssl_port: int, stream: io.StringIO) -> None:
        self.state = state
        self.plains = plains
        self.plain = plains[0]
        self.ssl = ssl_port
        self._stream = stream

    @property
    def error_log(self) -> str:
        return self._stream.getvalue()

    def reconfigure(self, cfg: dict[str, Any]) -> None:
        self.state.snapshot = build_snapshot(cfg, self.state.settings, log=self.state.error_log)

    async def wait_for_log(self, pattern: str, count: int = 1, timeout: float = TIMEOUT) -> list[str]:
        """Lines matching the regex ``pattern``, once there are ``count`` of them (polled with a deadline)."""
        deadline = time.monotonic() + timeout
        while True:
            lines = [line for line in self.error_log.splitlines() if re.search(pattern, line)]
            if len(lines) >= count:
                return lines
            if time.monotonic() > deadline:
                raise AssertionError(f"{count} x {pattern!r} not in the error log:\n{self.error_log}")
            await asyncio.sleep(0.01)


@asynccontextmanager
async def running_stream(
    tmp_path: Path,
    cfg: dict[str, Any] | Callable[[int, int], dict[str, Any]],
    plain: int = 1,
    overrides: dict[str, str] | None = None,
) -> AsyncIterator[StreamGateway]:
    """``plain`` plain listeners and one ``ssl`` listener; ``cfg`` may be a function of the first plain and the ssl
    port; ``overrides`` are settings."""
    overrides = overrides or {}
    plains, ssl_port = [free_port() for _ in range(plain)], free_port()
    listen = ", ".join(f"127.0.0.1:{port}" for port in plains)
    values = {
        "prefix": str(tmp_path),
        "proxy_listen": "off",
        "admin_listen": "off",
        "stream_listen": f"{listen}, 127.0.0.1:{ssl_port} ssl",
    }
    values.update(overrides)
    settings = load_settings(env={}, overrides=values)
    stream = io.StringIO()
    log = ErrorLog(None, level=overrides.get("log_level", "info"), stream=stream)
    config = cfg(plains[0], ssl_port) if callable(cfg) else cfg
    state = ProxyState(settings, log, AccessLog(None), build_snapshot(config, settings, log=log))
    front = StreamFront(state)
    loop = asyncio.get_running_loop()
    servers = [
        await loop.create_server(front.protocol_factory(listener), listener.host, listener.port, reuse_address=True)
        for listener in settings.stream_listen
    ]
    try:
        yield StreamGateway(state, plains, ssl_port, stream)
    finally:
        for server in servers:
            server.close()
        state.begin_shutdown()
        for item in list(state.pending):
            for endpoint in (getattr(item, "client", None), getattr(item, "upstream", None)):
                if endpoint is not None:
                    endpoint.abort()
            raw = getattr(item, "raw", None)
            if raw is not None:
                raw.abort()
        await state.wait_idle(2)
        state.close()
        for server in servers:
            await server.wait_closed()


# ------------------------------------------------------------------------------------------------ upstream peers
@dataclass
class Upstream:
    port: int
    server: asyncio.Server
    seen: list[bytes]


@asynccontextmanager
async def _serve(
    handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[Upstream]:
    seen: list[bytes] = []

    async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(run, "127.0.0.1", 0)
    try:
        yield Upstream(server.sockets[0].getsockname()[1], server, seen)
    finally:
        server.close()
        await server.wait_closed()


@asynccontextmanager
async def line_server(tag: str) -> AsyncIterator[Upstream]:
    """Reads one line, answers ``<tag>: <line>`` and closes."""
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await asyncio.wait_for(reader.readline(), TIMEOUT)
        seen.append(line)
        writer.write(tag.encode() + b": " + line)
        await writer.drain()

    async with _serve(handler) as upstream:
        upstream.seen = seen
        yield upstream


@asynccontextmanager
async def echo_server() -> AsyncIterator[Upstream]:
    """Echoes everything until the client's end of stream, then closes (its own half-close after the client's)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            data = await asyncio.wait_for(reader.read(1 << 16), TIMEOUT)
            if not data:
                return
            writer.write(data)
            await writer.drain()

    async with _serve(handler) as upstream:
        yield upstream


# ------------------------------------------------------------------------------------------------ clients
@dataclass
class SClient:
    """What ``openssl s_client -showcerts -ign_eof`` printed: the chain it was shown and everything else."""

    chain: list[x509.Certificate]
    output: str
    returncode: int

    @property
    def subject_cn(self) -> str:
        assert self.chain, f"no certificate received:\n{self.output}"
        attrs = self.chain[0].subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        return str(attrs[0].value) if attrs else ""


def _s_client(port: int, servername: str | None, data: bytes, extra: tuple[str, ...]) -> SClient:
    args = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-showcerts", "-ign_eof"]
    args += ["-servername", servername] if servername is not None else ["-noservername"]
    proc = subprocess.run([*args, *extra], input=data, capture_output=True, timeout=TIMEOUT)
    chain = [x509.load_pem_x509_certificate(pem) for pem in _PEM.findall(proc.stdout)]
    return SClient(chain, proc.stdout.decode("latin-1") + proc.stderr.decode("latin-1"), proc.returncode)


async def s_client(port: int, servername: str | None, data: bytes = b"", *extra: str) -> SClient:
    """``openssl s_client -servername <name>``, writing ``data`` and reading until the server closes (off the loop:
    the proxy under test runs on it)."""
    return await asyncio.to_thread(_s_client, port, servername, data, extra)


def _split_hello_exchange(port: int, server_name: str, payload: bytes, step: int) -> tuple[bytes, bytes]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname=server_name)
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        first = True
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                flight = outgoing.read()
                if first:  # the ClientHello: one segment per ``step`` bytes
                    for i in range(0, len(flight), step):
                        sock.sendall(flight[i : i + step])
                    first = False
                elif flight:
                    sock.sendall(flight)
                data = sock.recv(1 << 16)
                if not data:
                    raise ConnectionError("closed during the handshake") from None
                incoming.write(data)
        sock.sendall(outgoing.read())
        tls.write(payload)
        sock.sendall(outgoing.read())
        answer = b""
        while True:  # what arrived with the handshake's last flight is read before waiting for more
            try:
                chunk = tls.read(1 << 16)
                if not chunk:
                    break  # the server's close_notify
                answer += chunk
                continue
            except ssl.SSLWantReadError:
                pass
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                break
            data = sock.recv(1 << 16)
            if not data:
                break
            incoming.write(data)
        cert = tls.getpeercert(binary_form=True)
        return cert or b"", answer


async def split_hello_exchange(port: int, server_name: str, payload: bytes, step: int = 1) -> tuple[bytes, bytes]:
    """A TLS exchange whose ClientHello is written ``step`` bytes per TCP segment (TCP_NODELAY); returns the server's
    certificate (DER) and what it answered to ``payload``."""
    return await asyncio.to_thread(_split_hello_exchange, port, server_name, payload, step)


def cert_cn(der: bytes) -> str:
    cert = x509.load_der_x509_certificate(der)
    return str(cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value)
