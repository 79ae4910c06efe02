"""In-process proxy for tests: ``ProxyState`` + ``loop.create_server`` on a free loopback port.

``config(...)`` builds a Kong-shaped configuration (services/routes rows with Kong's defaults), so tests
state only what matters to them. ``raw_exchange`` speaks raw bytes over a real socket and reports whether
the server closed the connection; it never sleeps to guess readiness (reads are bounded by timeouts).
"""

from __future__ import annotations

import asyncio
import io
import itertools
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from gateway.observability.accesslog import AccessLog
from gateway.observability.errorlog import ErrorLog
from gateway.proxy.state import ProxyState
from gateway.runtime.snapshot import build_snapshot
from gateway.settings import Listener, Settings, load_settings

__all__ = ["Gateway", "config", "raw_exchange", "read_response", "route", "running_gateway", "service", "settings"]

_seq = itertools.count(1)


def service(url_host: str = "127.0.0.1", port: int = 80, **fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "name": f"svc{next(_seq)}",
        "protocol": "http",
        "host": url_host,
        "port": port,
        "path": None,
        "retries": 5,
        "connect_timeout": 60000,
        "write_timeout": 60000,
        "read_timeout": 60000,
        "enabled": True,
        "tls_verify": None,
        "tls_verify_depth": None,
        "ca_certificates": None,
        "client_certificate": None,
    }
    row.update(fields)
    return row


def route(svc: Mapping[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "name": None,
        "protocols": ["http", "https"],
        "methods": None,
        "hosts": None,
        "paths": None,
        "headers": None,
        "snis": None,
        "sources": None,
        "destinations": None,
        "strip_path": True,
        "preserve_host": False,
        "regex_priority": 0,
        "path_handling": "v0",
        "https_redirect_status_code": 426,
        "service": {"id": svc["id"]} if svc is not None else None,
        "created_at": 0,
        "updated_at": 0,
    }
    row.update(fields)
    return row


def config(
    services: list[dict[str, Any]], routes: list[dict[str, Any]], **extra: list[dict[str, Any]]
) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {"services": services, "routes": routes}
    out.update(extra)
    return out


def settings(tmp_path: Path, **overrides: str) -> Settings:
    values = {"prefix": str(tmp_path), "proxy_listen": "127.0.0.1:0", "admin_listen": "off"}
    values.update(overrides)
    return load_settings(env={}, overrides=values)


class Gateway:
    """A running in-process proxy."""

    def __init__(
        self, state: ProxyState, server: asyncio.Server, port: int, error_stream: io.StringIO, access_path: Path
    ) -> None:
        self.state = state
        self.server = server
        self.port = port
        self.error_stream = error_stream
        self.access_path = access_path
        self.url = f"http://127.0.0.1:{port}"

    @property
    def error_log(self) -> str:
        return self.error_stream.getvalue()

    def access_lines(self) -> list[str]:
        self.state.access_log.flush()
        return self.access_path.read_text().splitlines() if self.access_path.exists() else []

    def reconfigure(self, cfg: dict[str, list[dict[str, Any]]]) -> None:
        """Swap in a snapshot of ``cfg``, built as the runtime builds one (its error lines go to the error log)."""
        self.state.snapshot = build_snapshot(cfg, self.state.settings, log=self.state.error_log)


@asynccontextmanager
async def running_gateway(
    tmp_path: Path, cfg: dict[str, list[dict[str, Any]]], **overrides: str
) -> AsyncIterator[Gateway]:
    s = settings(tmp_path, **overrides)
    stream = io.StringIO()
    error_log = ErrorLog(None, level=overrides.get("log_level", "info"), stream=stream)
    access_path = tmp_path / "access.log"
    access_log = AccessLog(str(access_path))
    state = ProxyState(s, error_log, access_log, build_snapshot(cfg, s))
    loop = asyncio.get_running_loop()
    # as the real process does (runtime.lifecycle): an exception that escapes a protocol callback is an [alert] with
    # its traceback in the error log, and no test may leave one there
    previous_handler = loop.get_exception_handler()
    loop.set_exception_handler(error_log.loop_exception)
    listener = Listener("127.0.0.1", 0)
    server = await loop.create_server(state.protocol_factory(listener), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    gw = Gateway(state, server, port, stream, access_path)
    try:
        yield gw
    finally:
        server.close()
        state.begin_shutdown()
        for conn in list(state.connections):
            transport = getattr(conn, "transport", None)  # an HttpConnection's (registered: any connection)
            if transport is not None:
                transport.abort()
        await state.wait_idle(2)
        state.close()
        await server.wait_closed()
        access_log.close()
        loop.set_exception_handler(previous_handler)
    assert "Traceback" not in stream.getvalue(), stream.getvalue()


async def read_response(
    reader: asyncio.StreamReader, head_method: bool = False
) -> tuple[int, dict[str, str], bytes, list[tuple[str, str]]]:
    """Read one HTTP/1.1 response (Content-Length, chunked or close-delimited)."""
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("closed before a response")
    status = int(status_line.split()[1])
    raw_headers: list[tuple[str, str]] = []
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        raw_headers.append((name.strip(), value.strip()))
    headers = {n.lower(): v for n, v in raw_headers}
    if head_method or status in (204, 304) or 100 <= status < 200:
        return status, headers, b"", raw_headers
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            if size == 0:
                await reader.readline()
                break
            chunks.append(await reader.readexactly(size))
            await reader.readline()
        body = b"".join(chunks)
    else:
        body = await reader.read()
    return status, headers, body, raw_headers


async def raw_exchange(port: int, data: bytes, timeout: float = 5.0) -> tuple[bytes, bool]:
    """Send ``data``, read until the server closes (or ``timeout``). Returns (bytes, closed_by_server)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    chunks = []
    closed = False
    try:
        async with asyncio.timeout(timeout):
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    closed = True
                    break
                chunks.append(chunk)
    except TimeoutError:
        pass
    except ConnectionResetError:
        closed = True
    writer.close()
    return b"".join(chunks), closed
