"""The demo's upstreams: small TLS servers written with asyncio and ``ssl``, on loopback, in a thread.

Three servers, each answering every request with one short HTTP/1.1 response and closing:

- ``mtls``: presents ``mtls.demo.internal`` and asks for a client certificate issued under the demo root. Like
  nginx with ``ssl_verify_client on`` it completes the handshake without one and answers
  ``400 No required SSL certificate was sent``; with one it answers 200 and says whose (``X-Demo-Client-Cert``),
  which is how the demo shows *which level* of the gateway's client certificate was presented.
- ``verify``: presents ``verify.demo.internal`` and the intermediate: verified against the root, depth 1 (layer 4);
- ``deep``: presents ``deep.demo.internal`` and both intermediates above it: verification needs depth 2.

They run on their own event loop in a daemon thread so that the demo's steps can stay plain blocking code.
Handshake failures (the gateway refusing a certificate ends the handshake) are expected here: the loop's
exception handler keeps them in ``events`` instead of printing them.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Awaitable, Callable
from typing import Final

from cryptography import x509
from cryptography.x509.oid import NameOID

from gateway.demo.pki import DemoPki, Identity

__all__ = ["NO_CERT_ANSWER", "DemoUpstreams"]

NO_CERT_ANSWER: Final = "No required SSL certificate was sent"
READY_TIMEOUT: Final = 10.0
REQUEST_TIMEOUT: Final = 10.0


def _context(identity: Identity, client_ca: Identity | None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(identity.files["chain.crt"], identity.files["key"])
    if client_ca is not None:
        ctx.verify_mode = ssl.CERT_OPTIONAL
        ctx.load_verify_locations(client_ca.files["crt"])
    return ctx


def _client_cn(writer: asyncio.StreamWriter) -> str | None:
    ssl_object = writer.get_extra_info("ssl_object")
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    if not der:
        return None
    names = x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else "(no CN)"


def _response(status: str, body: str, headers: dict[str, str]) -> bytes:
    extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    data = body.encode()
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(data)}\r\n{extra}Connection: close\r\n"
    )
    return head.encode() + b"\r\n" + data


class DemoUpstreams:
    """``start()`` returns once all listen, ``stop()`` ends them; ``ports["mtls"]``, ``["verify"]``, ``["deep"]``."""

    def __init__(self, pki: DemoPki) -> None:
        self.pki = pki
        self.ports: dict[str, int] = {}
        self.events: list[str] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopped: asyncio.Event | None = None
        self._error: BaseException | None = None

    async def _mtls(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        cn = _client_cn(writer)
        if cn is None:
            return await self._answer(reader, writer, "400 Bad Request", NO_CERT_ANSWER + "\n", {})
        body = f"hello from mtls.demo.internal; your client certificate: CN={cn}\n"
        return await self._answer(reader, writer, "200 OK", body, {"X-Demo-Client-Cert": f"CN={cn}"})

    def _hello(self, name: str) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
        async def hello(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._answer(reader, writer, "200 OK", f"hello from {name}\n", {})

        return hello

    async def _answer(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        status: str,
        body: str,
        headers: dict[str, str],
    ) -> None:
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                await reader.readuntil(b"\r\n\r\n")
            writer.write(_response(status, body, headers))
            await writer.drain()
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            self.events.append(f"upstream connection ended early: {exc!r}")
        finally:
            writer.close()

    async def _serve(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, context: self.events.append(str(context.get("message"))))
        self._stopped = asyncio.Event()
        pki = self.pki
        servers = {
            "mtls": await asyncio.start_server(
                self._mtls, "127.0.0.1", 0, ssl=_context(pki.mtls_upstream, pki.root), ssl_handshake_timeout=10
            ),
            "verify": await asyncio.start_server(
                self._hello(pki.verify_upstream.name),
                "127.0.0.1",
                0,
                ssl=_context(pki.verify_upstream, None),
                ssl_handshake_timeout=10,
            ),
            "deep": await asyncio.start_server(
                self._hello(pki.deep_upstream.name),
                "127.0.0.1",
                0,
                ssl=_context(pki.deep_upstream, None),
                ssl_handshake_timeout=10,
            ),
        }
        self.ports = {name: server.sockets[0].getsockname()[1] for name, server in servers.items()}
        self._ready.set()
        await self._stopped.wait()
        for server in servers.values():
            server.close()
            await server.wait_closed()

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported by start(); the thread must not print a traceback
            self._error = exc
            self._ready.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="demo-upstreams", daemon=True)
        self._thread.start()
        if not self._ready.wait(READY_TIMEOUT) or self._error is not None:
            raise RuntimeError(f"the demo's upstreams did not start: {self._error!r}")

    def stop(self) -> None:
        thread, stopped, loop = self._thread, self._stopped, self._loop
        if thread is None or not thread.is_alive() or stopped is None or loop is None:
            return
        loop.call_soon_threadsafe(stopped.set)
        thread.join(READY_TIMEOUT)
