"""The demo's two clients, each printing the ``curl`` line that does the same thing, for the reader to copy.

- ``Admin``: JSON calls to the Admin API. A body longer than a line is written to ``requests/NN-....json`` in the
  demo's directory and the curl line sends that file (``--data @file``), so the line stays copyable; each write
  waits until the gateway runs the configuration that includes it.
- ``request``: one proxied ``GET /`` over plain HTTP or TLS (with an SNI and, optionally, a client certificate
  chain), always with ``Kong-Debug: 1``. It returns the status, the headers, the body and the certificate the
  gateway served.

Only the standard library talks here (``http.client``, ``socket``, ``ssl``): the demo needs no curl.
"""

from __future__ import annotations

import http.client
import json
import shlex
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from cryptography import x509
from cryptography.x509.oid import NameOID

from gateway.demo.gatewayproc import DemoGateway

__all__ = ["Admin", "AdminError", "ProxyAnswer", "request"]

TIMEOUT: Final = 15.0
INLINE_BODY: Final = 100  # characters of JSON a curl line carries inline; longer bodies go to a file
DEBUG_HEADERS: Final = ("kong-route-", "kong-service-", "x-gateway-tls-")

Say = Callable[[str], None]


class AdminError(RuntimeError):
    """An Admin API call answered with an error status."""


def _cn(name: x509.Name) -> str:
    cns = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return f"CN={cns[0].value!s}" if cns else name.rfc4514_string()


class Admin:
    """Admin API calls, each echoed as a curl line through ``say``."""

    def __init__(self, gateway: DemoGateway, directory: Path, say: Say) -> None:
        self.gateway = gateway
        self.requests = directory / "requests"
        self.requests.mkdir(exist_ok=True)
        self.say = say
        self._count = 0

    def _curl(self, method: str, path: str, text: str | None) -> str:
        line = f"curl -sS -X {method} {self.gateway.admin_url}{path}"
        if text is None:
            return line
        self._count += 1
        if len(text) <= INLINE_BODY:
            data = shlex.quote(text)
        else:
            slug = path.strip("/").replace("/", "-") or "root"
            body_file = self.requests / f"{self._count:02d}-{method.lower()}-{slug}.json"
            body_file.write_text(text)
            data = f"@{body_file}"
        return f"{line} -H 'Content-Type: application/json' --data {data}"

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        text = json.dumps(body) if body is not None else None
        self.say(f"  $ {self._curl(method, path, text)}")
        before = self.gateway.live_version()
        conn = http.client.HTTPConnection("127.0.0.1", self.gateway.admin_port, timeout=TIMEOUT)
        try:
            headers = {"Content-Type": "application/json"} if text is not None else {}
            conn.request(method, path, body=text, headers=headers)
            res = conn.getresponse()
            raw = res.read()
        finally:
            conn.close()
        if res.status >= 400:
            raise AdminError(f"{method} {path}: {res.status} {raw.decode(errors='replace')}")
        if method != "GET":
            self.gateway.wait_live_after(before)
        answer: dict[str, Any] = json.loads(raw) if raw else {}
        return answer

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.call("POST", path, body)

    def patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.call("PATCH", path, body)


@dataclass
class ProxyAnswer:
    """What a proxied request got: status, headers (lower-case names), body, and the served certificate."""

    status: int
    headers: dict[str, str]
    body: str
    served: x509.Certificate | None = None
    debug: list[str] = field(default_factory=list)

    @property
    def served_words(self) -> str:
        if self.served is None:
            return "(plain HTTP)"
        return f"{_cn(self.served.subject)}, issued by {_cn(self.served.issuer)}"


def _curl_request(gateway: DemoGateway, host: str, tls: bool, cert: tuple[Path, Path] | None, ca: Path | None) -> str:
    if not tls:
        return f"curl -sS -i http://127.0.0.1:{gateway.proxy_port}/ -H 'Host: {host}' -H 'Kong-Debug: 1'"
    port = gateway.proxy_ssl_port
    trust = f"--cacert {shlex.quote(str(ca))}" if ca is not None else "-k"
    line = f"curl -sS -i {trust} --resolve {host}:{port}:127.0.0.1 https://{host}:{port}/ -H 'Kong-Debug: 1'"
    if cert is not None:
        line += f" --cert {shlex.quote(str(cert[0]))} --key {shlex.quote(str(cert[1]))}"
    return line


def _open(gateway: DemoGateway, host: str, tls: bool, cert: tuple[Path, Path] | None) -> socket.socket:
    port = gateway.proxy_ssl_port if tls else gateway.proxy_port
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    if not tls:
        return sock
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the demo reports what was served, the default certificate included
    if cert is not None:
        ctx.load_cert_chain(cert[0], cert[1])
    return ctx.wrap_socket(sock, server_hostname=host)


def request(
    gateway: DemoGateway,
    host: str,
    say: Say,
    *,
    tls: bool = False,
    cert: tuple[Path, Path] | None = None,
    ca: Path | None = None,
) -> ProxyAnswer:
    """``GET /`` with ``Host: host`` (and SNI ``host`` over TLS), printing the equivalent curl line."""
    say(f"  $ {_curl_request(gateway, host, tls, cert, ca)}")
    sock = _open(gateway, host, tls, cert)
    try:
        served = None
        if isinstance(sock, ssl.SSLSocket):
            der = sock.getpeercert(binary_form=True)
            served = x509.load_der_x509_certificate(der) if der else None
        sock.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nKong-Debug: 1\r\nConnection: close\r\n\r\n".encode())
        res = http.client.HTTPResponse(sock)
        res.begin()
        body = res.read().decode(errors="replace")
        headers = {name.lower(): value for name, value in res.getheaders()}
    finally:
        sock.close()
    debug = [f"{name}: {value}" for name, value in res.getheaders() if name.lower().startswith(DEBUG_HEADERS)]
    return ProxyAnswer(res.status, headers, body.strip(), served, debug)
