"""Request headers with names nginx calls invalid (``_`` and token punctuation), over real sockets, both parsers.

nginx (so Kong) drops them before anything reads the request (``ignore_invalid_headers on``,
``underscores_in_headers off``) and logs an ``info`` line; the request itself is served. The reproducer:
``X_Consumer_Username: admin`` next to the real ``X-Consumer-Username`` must not reach the upstream, where a
WSGI/CGI application would read both as ``HTTP_X_CONSUMER_USERNAME``.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.nginx import NginxRunner
from tests.integration.proxy.harness import config, read_response, route, running_gateway, service
from tests.integration.proxy.upstreams import python_upstream, read_head

pytestmark = pytest.mark.timeout(60)

REPRODUCER = [("X_Consumer_Username", "admin"), ("X-Consumer-Username", "real")]


async def _head_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers each (bodyless) request with the request head it received, byte for byte."""
    while True:
        head = await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%b" % (len(head), head))
        await writer.drain()


async def _get(port: int, headers: list[tuple[str, str]], path: str = "/echo") -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: example.com\r\n{lines}\r\n".encode("latin-1"))
    await writer.drain()
    try:
        status, _headers, body, _raw = await read_response(reader)
    finally:
        writer.close()
    return status, body


def _upstream_lines(body: bytes) -> list[str]:
    """The header lines the upstream received (the echoed head, request line excluded)."""
    return body.decode("latin-1").split("\r\n")[1:-2]


def _invalid_line(header_line: str, request_line: str, host: str = "example.com", suffix: str = "") -> re.Pattern[str]:
    """nginx's line for one dropped header, whole (nothing may follow it: no request_id at this stage)."""
    return re.compile(
        r"^\S+ \S+ \[info\] \d+#0: \*\d+ "
        + re.escape(
            f'client sent invalid header line: "{header_line}" while reading client request headers, '
            f'client: 127.0.0.1, server: kong, request: "{request_line}", host: "{host}"{suffix}'
        )
        + "$",
        re.M,
    )


def _cfg(port: int, **route_fields: Any) -> dict[str, list[dict[str, Any]]]:
    svc = service("127.0.0.1", port)
    return config([svc], [route(svc, paths=["/"], strip_path=False, **route_fields)])


async def test_underscore_header_is_dropped_and_logged(tmp_path: Path, http_parser: str) -> None:
    async with (
        python_upstream(_head_echo) as port,
        running_gateway(tmp_path, _cfg(port), http_parser=http_parser) as gw,
    ):
        status, body = await _get(gw.port, REPRODUCER)
        log = gw.error_log
        access = gw.access_lines()
    assert status == 200
    received = _upstream_lines(body)
    assert "X-Consumer-Username: real" in received
    assert not [line for line in received if line.lower().startswith("x_consumer_username")], received
    assert _invalid_line("X_Consumer_Username: admin", "GET /echo HTTP/1.1").search(log), log
    assert log.count("client sent invalid header line") == 1
    assert '"GET /echo HTTP/1.1" 200' in access[-1]


async def test_underscores_in_headers_on_forwards_both_and_logs_nothing(tmp_path: Path, http_parser: str) -> None:
    async with python_upstream(_head_echo) as port:
        # Kong's injected spelling, as a Kong user's configuration carries it
        cfg = _cfg(port)
        async with running_gateway(
            tmp_path, cfg, http_parser=http_parser, nginx_http_underscores_in_headers="on"
        ) as gw:
            status, body = await _get(gw.port, REPRODUCER)
            log = gw.error_log
    assert status == 200
    received = _upstream_lines(body)
    assert "X_Consumer_Username: admin" in received and "X-Consumer-Username: real" in received
    assert "invalid header" not in log


async def test_other_invalid_characters_are_dropped_with_the_context_read_before_them(
    tmp_path: Path, http_parser: str
) -> None:
    headers = [("X.Foo", "1"), ("Referer", "http://r.example/"), ("X~Bar", "2"), ("X-Ok", "3")]
    # underscores allowed: the other characters are still invalid
    async with (
        python_upstream(_head_echo) as port,
        running_gateway(tmp_path, _cfg(port), http_parser=http_parser, underscores_in_headers="on") as gw,
    ):
        status, body = await _get(gw.port, headers, path="/dots?a=1")
        log = gw.error_log
    assert status == 200
    received = _upstream_lines(body)
    assert "X-Ok: 3" in received and "Referer: http://r.example/" in received
    assert not [line for line in received if line.startswith(("X.Foo", "X~Bar"))], received
    request_line = "GET /dots?a=1 HTTP/1.1"
    assert _invalid_line("X.Foo: 1", request_line).search(log), log
    assert _invalid_line("X~Bar: 2", request_line, suffix=', referrer: "http://r.example/"').search(log), log


async def test_ignore_invalid_headers_off_forwards_them(tmp_path: Path, http_parser: str) -> None:
    async with (
        python_upstream(_head_echo) as port,
        running_gateway(tmp_path, _cfg(port), http_parser=http_parser, nginx_proxy_ignore_invalid_headers="off") as gw,
    ):
        status, body = await _get(gw.port, [*REPRODUCER, ("X.Foo", "1")])
        log = gw.error_log
    assert status == 200
    received = _upstream_lines(body)
    assert {"X_Consumer_Username: admin", "X-Consumer-Username: real", "X.Foo: 1"} <= set(received)
    assert "invalid header" not in log


async def test_nothing_is_logged_below_info(tmp_path: Path, http_parser: str) -> None:
    async with (
        python_upstream(_head_echo) as port,
        running_gateway(tmp_path, _cfg(port), http_parser=http_parser, log_level="notice") as gw,
    ):
        status, body = await _get(gw.port, REPRODUCER)
        log = gw.error_log
    assert status == 200 and "X_Consumer_Username" not in body.decode("latin-1")
    assert "invalid header" not in log


async def test_route_headers_do_not_match_a_dropped_header(tmp_path: Path, http_parser: str) -> None:
    """Route ``headers`` conditions fold ``-`` and ``_``: a dropped ``X_Consumer_Username`` must not match."""
    async with python_upstream(_head_echo) as port:
        cfg = _cfg(port, headers={"x-consumer-username": ["admin"]})
        async with running_gateway(tmp_path, cfg, http_parser=http_parser) as gw:
            dropped, dropped_body = await _get(gw.port, REPRODUCER)
            real, _ = await _get(gw.port, [("X-Consumer-Username", "admin")])
        async with running_gateway(tmp_path, cfg, http_parser=http_parser, underscores_in_headers="on") as gw:
            allowed, _ = await _get(gw.port, REPRODUCER)
    assert dropped == 404 and b"no Route matched with those values" in dropped_body
    assert real == 200
    assert allowed == 200  # with underscores allowed the header is there, and matches as in Kong


def _messages(log: str) -> list[str]:
    """The invalid-header lines without the time, pid and connection number."""
    return re.findall(r"\*\d+ (client sent invalid header line: .*)$", log, flags=re.M)


async def test_log_lines_are_nginx_lines(tmp_path: Path, http_parser: str, nginx: NginxRunner) -> None:
    """The same request to nginx itself and to the gateway: the same lines, in the same order, same context."""
    reference = nginx.start(
        """
        server {
            listen 127.0.0.1:{port};
            server_name kong;
            location / { return 200 "$http_x_consumer_username"; }
        }
        """
    )
    headers = [("X.Foo", "1"), ("Referer", "http://r.example/"), *REPRODUCER, ("X_Empty", "")]
    nginx_status, nginx_body = await _get(reference.port, headers, path="/a?b=c")
    async with (
        python_upstream(_head_echo) as port,
        running_gateway(tmp_path, _cfg(port), http_parser=http_parser) as gw,
    ):
        status, _ = await _get(gw.port, headers, path="/a?b=c")
        ours = _messages(gw.error_log)
    assert (nginx_status, nginx_body) == (200, b"real")
    theirs = _messages(reference.error_log_text())
    assert len(theirs) == 3, theirs
    assert status == 200 and ours == theirs
