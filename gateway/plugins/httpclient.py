"""A small asyncio HTTP/1.1 client for plugins' side fetches (OCSP responders, CRL distribution points).

Why our own: the gateway already parses HTTP with httptools and must not pull an HTTP client library into the
proxy process for two request shapes. It does one request per connection (``Connection: close``), plain HTTP
only (OCSP and CRL URLs are ``http://`` by convention, because their content is signed), optionally through an
HTTP proxy (absolute-form request line), with one overall deadline and a size cap.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httptools

from gateway.downstream.headers import first_value

__all__ = ["FetchError", "HttpResponse", "fetch"]

MAX_BODY = 16 * 1024 * 1024


class FetchError(Exception):
    """The fetch failed (bad URL, connect error, timeout, malformed or oversized response)."""


@dataclass(slots=True)
class HttpResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return first_value(self.headers, name)


class _Collector:
    """httptools callbacks -> an ``HttpResponse``."""

    def __init__(self, limit: int) -> None:
        self.response = HttpResponse(0)
        self.parts: list[bytes] = []
        self.size = 0
        self.limit = limit
        self.complete = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.response.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > self.limit:
            raise FetchError(f"response body larger than {self.limit} bytes")
        self.parts.append(body)

    def on_message_complete(self) -> None:
        self.complete = True


async def fetch(
    url: str,
    *,
    method: str = "GET",
    body: bytes | None = None,
    content_type: str | None = None,
    timeout: float = 30.0,
    proxy: tuple[str, int] | None = None,
    limit: int = MAX_BODY,
) -> HttpResponse:
    """Fetch ``url`` and return the whole response.

    Raises:
        FetchError: for every failure, with a reason fit for an error-log line.
    """
    try:
        return await asyncio.wait_for(_fetch(url, method, body, content_type, proxy, limit), timeout)
    except TimeoutError:
        raise FetchError(f"timed out after {timeout:g}s fetching {url}") from None
    except FetchError:
        raise
    except (OSError, httptools.HttpParserError, ValueError) as exc:
        raise FetchError(f"{type(exc).__name__}: {exc} fetching {url}") from None


async def _fetch(
    url: str,
    method: str,
    body: bytes | None,
    content_type: str | None,
    proxy: tuple[str, int] | None,
    limit: int,
) -> HttpResponse:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise FetchError(f"unsupported URL (plain http only): {url}")
    host = parts.hostname
    port = parts.port or 80
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    host_header = host if parts.port is None else f"{host}:{port}"
    if ":" in host and not host.startswith("["):
        host_header = f"[{host}]" if parts.port is None else f"[{host}]:{port}"
    if proxy is not None:
        connect_host, connect_port = proxy
        target = url
    else:
        connect_host, connect_port = host, port
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host_header}", "Connection: close", "User-Agent: kong-gateway"]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
        if content_type:
            lines.append(f"Content-Type: {content_type}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    reader, writer = await asyncio.open_connection(connect_host, connect_port)
    try:
        writer.write(head + (body or b""))
        await writer.drain()
        collector = _Collector(limit)
        parser = httptools.HttpResponseParser(collector)
        while not collector.complete:
            data = await reader.read(65536)
            if not data:
                break
            parser.feed_data(data)
        if not collector.complete:
            # a close-delimited body ends at EOF; anything else is truncated
            if parser.get_status_code() and collector.response.header("content-length") is None:
                collector.complete = True
            else:
                raise FetchError(f"connection closed before the response was complete fetching {url}")
        response = collector.response
        response.status = parser.get_status_code()
        response.body = b"".join(collector.parts)
        return response
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass
