"""The ``ssl`` listener in-process, on the stdlib asyncio loop (the process tests run it on uvloop).

``FirstBytes`` hands the socket over with ``transport.set_protocol``; this checks that the handover works on
asyncio's selector transports too, and that ``build_snapshot`` loads the default certificates by itself when the
caller passes no ``server_tls`` (one-off builds, tests).
"""

from __future__ import annotations

import asyncio
import io
import ssl
from pathlib import Path

from gateway.observability.accesslog import AccessLog
from gateway.observability.errorlog import ErrorLog
from gateway.proxy.state import ProxyState
from gateway.runtime.snapshot import build_snapshot
from gateway.settings import load_settings


async def test_tls_and_plain_http_on_one_ssl_listener(tmp_path: Path) -> None:
    settings = load_settings(
        env={}, overrides={"prefix": str(tmp_path), "proxy_listen": "127.0.0.1:0 ssl", "admin_listen": "off"}
    )
    snapshot = build_snapshot({}, settings)
    assert snapshot.certificates is not None and (tmp_path / "ssl" / "kong-default.crt").exists()
    stream = io.StringIO()
    state = ProxyState(settings, ErrorLog(None, "info", stream=stream), AccessLog(None), snapshot)
    server = await asyncio.get_running_loop().create_server(
        state.protocol_factory(settings.proxy_listen[0]), "127.0.0.1", 0
    )
    port = server.sockets[0].getsockname()[1]
    try:
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="x.test")
        for _ in range(2):  # keepalive over TLS: Kong's 404, twice on one connection
            writer.write(b"GET / HTTP/1.1\r\nHost: x.test\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 404 ")
            length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            await asyncio.wait_for(reader.readexactly(length), 5)
        peer = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        assert peer is not None
        writer.close()

        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x.test\r\n\r\n")
        data = await asyncio.wait_for(reader.read(), 5)
        assert data.startswith(b"HTTP/1.1 400 Bad Request\r\n")
        assert b"The plain HTTP request was sent to HTTPS port" in data
        writer.close()
    finally:
        server.close()
        state.begin_shutdown()
        await state.wait_idle(2)
        state.close()
        await server.wait_closed()
