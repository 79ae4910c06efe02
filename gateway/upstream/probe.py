"""One active health-check probe: connect, maybe TLS, maybe ``GET``, and what came of it.

What a probe does and reports follows lua-resty-healthcheck 3.1.0 (the version Kong pins), ``run_single_check``:

- ``tcp``: a successful connect is a success; a connect timeout is a ``timeout``, any other connect error a
  ``tcp`` failure.
- ``http``/``https``: after the connect (and for ``https`` the handshake: SNI, verification against the probe's
  trust store when ``https_verify_certificate``, the host check against the SNI, an optional client
  certificate), one request ``GET <http_path> HTTP/1.0`` with the configured ``headers`` then ``Host``; the
  status line decides. A send or receive timeout is a ``timeout``, another send/receive error a ``tcp`` failure,
  a status line that does not parse is status 0 (counted as an HTTP failure).
- A failed handshake, whatever the reason, counts as a ``tcp`` failure (and is logged by the checker with Kong's
  ``failed SSL handshake with ...`` line, using the cosocket's error text: ``handshake failed``,
  ``<code>: <verify error>``, ``certificate host mismatch``, ``timeout``).

Every probe opens its own connection and closes it: probes never touch the proxy's keepalive pool or its TLS
session cache (``open_tls_connection`` is called without a session, and the transport is not pooled).
``timeout`` bounds the connect and the handshake together, then the request and the status line together
(cosockets' ``settimeout`` applies per operation: a probe here can fail slightly sooner on a very slow peer).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from OpenSSL import SSL

from gateway.tls.engine.errors import TlsHandshakeError
from gateway.tls.engine.transport import open_tls_connection

__all__ = ["ProbeResult", "probe"]

_STATUS = re.compile(rb"^HTTP/\d+\.\d+\s+(\d+)", re.IGNORECASE)
MAX_STATUS_LINE = 8192


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """``outcome`` is ``success`` (tcp), ``status`` (``status`` set), ``tcp`` or ``timeout``; ``log`` is the
    checker's error line for it (without prefix), or empty."""

    outcome: str
    status: int = 0
    log: str = ""


class _Reader(asyncio.Protocol):
    """Collects the first line of the answer; the rest is ignored (the connection is closed right after)."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.error: str = ""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if (b"\n" in self.buffer or len(self.buffer) > MAX_STATUS_LINE) and not self.done.done():
            self.done.set_result(None)

    def eof_received(self) -> bool | None:
        if not self.done.done():
            self.error = "closed"
            self.done.set_result(None)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.error = "closed" if exc is None else (str(exc) or "closed")
            self.done.set_result(None)


def _cosocket_error(exc: TlsHandshakeError) -> str:
    """The error text ``sock:sslhandshake`` returns for a failed handshake."""
    if exc.kind == "verify" and exc.verify_code is not None:
        text = exc.verify_text or ""
        code, _, reason = text.partition(":")
        return f"{code}: {reason}"
    if exc.kind == "hostname":
        return "certificate host mismatch"
    if exc.kind == "timeout":
        return "timeout"
    return "handshake failed"


async def probe(
    kind: str,
    ip: str,
    port: int,
    hostname: str,
    host_header: str,
    *,
    timeout: float,
    http_path: str = "/",
    headers: str = "",
    context: SSL.Context | None = None,
    sni: str | None = None,
    verify: bool = True,
) -> ProbeResult:
    """Run one check of ``ip:port`` (``hostname`` is the target's name, for log lines).

    Args:
        kind: ``tcp``, ``http`` or ``https``.
        host_header: the ``Host`` of the request (``upstream.host_header`` or the target name).
        headers: the configured headers, already serialised as ``Name: value\\r\\n`` lines.
        context/sni/verify: the ``https`` handshake (``context`` from ``gateway.tls.upstream.probes``).
    """
    loop = asyncio.get_running_loop()
    where = f"'{hostname} ({ip}:{port})'"
    reader = _Reader()
    transport: asyncio.Transport | None = None
    try:
        if kind == "https":
            assert context is not None, "an https probe needs its TLS context"
            try:
                transport, _ = await open_tls_connection(
                    loop,
                    ip,
                    port,
                    context,
                    sni,
                    lambda: reader,
                    timeout,
                    verify=verify,
                    verify_hostname=sni if verify else None,
                )
            except TlsHandshakeError as exc:
                reason = _cosocket_error(exc)
                return ProbeResult(
                    "tcp", log=f"failed SSL handshake with {where}, using server name (sni) '{sni}': {reason}"
                )
            except TimeoutError:
                return ProbeResult("timeout")  # the TCP connect itself timed out
            except OSError:
                return ProbeResult("tcp")
        else:
            try:
                async with asyncio.timeout(timeout):
                    transport, _ = await loop.create_connection(lambda: reader, ip, port)
            except TimeoutError:
                return ProbeResult("timeout")
            except OSError:
                return ProbeResult("tcp")
            if kind == "tcp":
                return ProbeResult("success")
        request = f"GET {http_path} HTTP/1.0\r\n{headers}Host: {host_header}\r\n\r\n".encode("latin-1")
        transport.write(request)
        try:
            async with asyncio.timeout(timeout):
                await reader.done
        except TimeoutError:
            return ProbeResult("timeout", log=f"failed to receive status line from {where}: timeout")
        line = bytes(reader.buffer).split(b"\n", 1)[0].rstrip(b"\r")
        if not line and reader.error:
            return ProbeResult("tcp", log=f"failed to receive status line from {where}: {reader.error}")
        match = _STATUS.match(line)
        if match is None:
            text = line.decode("latin-1")
            return ProbeResult("status", 0, log=f"bad status line from {where}: {text}")
        return ProbeResult("status", int(match.group(1)))
    finally:
        if transport is not None:
            transport.abort()
