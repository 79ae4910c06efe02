"""Kong's ``allow_debug_header`` rules (``gateway.proxy.trace``), in process with both parsers: which of the four
``Kong-*`` headers a response gets, that the header's presence is what counts, and that ``Kong-Debug`` is forwarded
upstream whether or not the setting is on."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.integration.proxy.harness import config, read_response, route, running_gateway, service
from tests.integration.proxy.upstreams import python_upstream, read_head


async def _echo_debug(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        head = await read_head(reader)
        if not head:
            return
        seen = b"yes" if b"\r\nkong-debug:" in head.lower() else b"no"
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%b" % (len(seen), seen))
        await writer.drain()


async def _get(port: int, path: str, debug: str | None) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        extra = f"Kong-Debug: {debug}\r\n" if debug is not None else ""
        writer.write(f"GET {path} HTTP/1.1\r\nHost: t.test\r\n{extra}\r\n".encode())
        status, headers, body, _ = await read_response(reader)
        return status, headers, body
    finally:
        writer.close()


async def test_kongs_debug_headers(tmp_path: Path, http_parser: str) -> None:
    async with python_upstream(_echo_debug) as up:
        svc = service("127.0.0.1", up, name="echo")
        named = route(svc, name="named", paths=["/named"])
        anonymous = route(svc, paths=["/anonymous"])
        serviceless = route(None, name="lonely", paths=["/lonely"])
        cfg = config([svc], [named, anonymous, serviceless])
        async with running_gateway(tmp_path, cfg, allow_debug_header="on", http_parser=http_parser) as gw:
            status, headers, body = await _get(gw.port, "/named", "1")
            assert (status, body) == (200, b"yes")  # Kong-Debug goes upstream too
            assert (headers["kong-route-id"], headers["kong-route-name"]) == (named["id"], "named")
            assert (headers["kong-service-id"], headers["kong-service-name"]) == (svc["id"], "echo")
            assert not [name for name in headers if name.startswith("x-gateway-tls")]  # plain listener and service

            status, headers, _ = await _get(gw.port, "/anonymous", "0")  # any value: Kong tests presence
            assert status == 200 and headers["kong-route-id"] == anonymous["id"]
            assert "kong-route-name" not in headers

            status, headers, _ = await _get(gw.port, "/lonely", "1")
            assert status == 503  # no Service found with those values: the route's headers, no service's
            assert (headers["kong-route-id"], headers["kong-route-name"]) == (serviceless["id"], "lonely")
            assert "kong-service-id" not in headers and "kong-service-name" not in headers

            status, headers, _ = await _get(gw.port, "/nowhere", "1")
            assert status == 404
            assert not [name for name in headers if name.startswith("kong-")]

            status, headers, _ = await _get(gw.port, "/named", None)
            assert status == 200 and "kong-route-id" not in headers


async def test_off_by_default_and_still_forwarded(tmp_path: Path) -> None:
    async with python_upstream(_echo_debug) as up:
        svc = service("127.0.0.1", up)
        async with running_gateway(tmp_path, config([svc], [route(svc, paths=["/"])])) as gw:
            status, headers, body = await _get(gw.port, "/", "1")
    assert (status, body) == (200, b"yes")
    assert not [name for name in headers if name.startswith(("kong-route", "kong-service", "x-gateway-tls"))]
