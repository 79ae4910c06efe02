"""Real TLS clients for the downstream TLS tests: ``openssl s_client``, curl and Python's ``ssl``.

Every call is bounded (subprocess timeouts, socket timeouts); ``s_client`` runs with stdin closed, so it completes
the handshake, prints what it saw and exits. Nothing here sleeps.
"""

from __future__ import annotations

import http.client
import re
import socket
import ssl
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

__all__ = [
    "Handshake",
    "HttpsKeepalive",
    "cn",
    "curl",
    "key_type",
    "python_handshake",
    "s_client",
    "wait_until",
]

TIMEOUT = 10.0
_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\n?", re.S)


def cn(cert: x509.Certificate) -> str:
    """The subject's common name."""
    attrs = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else ""


def key_type(cert: x509.Certificate) -> str:
    """``rsa`` or ``ec`` (the certificate's public key)."""
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return "rsa"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "ec"
    return type(key).__name__


@dataclass
class Handshake:
    """What ``openssl s_client -showcerts`` reported."""

    chain: list[x509.Certificate] = field(default_factory=list)
    protocol: str | None = None
    cipher: str | None = None
    alpn: str | None = None
    reused: bool = False
    ticket_lifetime: int | None = None
    output: str = ""
    returncode: int = 0

    @property
    def ok(self) -> bool:
        return bool(self.chain) and self.cipher not in (None, "(NONE)", "0000")

    @property
    def leaf(self) -> x509.Certificate:
        assert self.chain, f"no certificate received:\n{self.output}"
        return self.chain[0]

    @property
    def subjects(self) -> list[str]:
        return [cn(c) for c in self.chain]


def s_client(port: int, servername: str | None, *extra: str, timeout: float = TIMEOUT) -> Handshake:
    """``openssl s_client -connect 127.0.0.1:<port> -servername <name> -showcerts <extra>`` with stdin closed.

    ``servername=None`` sends no SNI (``-noservername``), as a client connecting to an IP does.
    """
    args = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-showcerts"]
    args += ["-servername", servername] if servername is not None else ["-noservername"]
    args += list(extra)
    proc = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    out = proc.stdout.decode("latin-1")
    result = Handshake(output=out + proc.stderr.decode("latin-1"), returncode=proc.returncode)
    result.chain = [x509.load_pem_x509_certificate(pem) for pem in _PEM.findall(proc.stdout)]
    match = re.search(r"^(?:New|Reused), (\S+), Cipher is (\S+)", out, re.M)
    if match:
        result.protocol, result.cipher = match.group(1), match.group(2)
    result.reused = bool(re.search(r"^Reused, ", out, re.M))
    match = re.search(r"^ALPN protocol: (\S+)", out, re.M)
    result.alpn = match.group(1) if match else None
    match = re.search(r"TLS session ticket lifetime hint: (\d+)", out)
    result.ticket_lifetime = int(match.group(1)) if match else None
    return result


def curl(*args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    """``curl -sS <args>``; returns the completed process (stdout, stderr, returncode)."""
    return subprocess.run(
        ["curl", "-sS", "--max-time", str(int(timeout)), *args], capture_output=True, text=True, timeout=timeout + 5
    )


def _client_context(cafile: str | None) -> ssl.SSLContext:
    if cafile is None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    return ssl.create_default_context(cafile=cafile)


def python_handshake(
    port: int, server_hostname: str | None, cafile: str | None = None, **context_options: Any
) -> tuple[x509.Certificate, str | None, str | None]:
    """Handshake with Python's ``ssl``; returns (leaf, negotiated version, ALPN)."""
    ctx = _client_context(cafile)
    alpn = context_options.pop("alpn", None)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    for name, value in context_options.items():
        setattr(ctx, name, value)
    raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    with ctx.wrap_socket(raw, server_hostname=server_hostname) as tls:
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return x509.load_der_x509_certificate(der), tls.version(), tls.selected_alpn_protocol()


class HttpsKeepalive:
    """One keepalive HTTPS connection (Python ``ssl``), so a test can prove later requests use the same socket."""

    def __init__(self, port: int, server_hostname: str, cafile: str | None = None) -> None:
        raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.server_hostname = server_hostname
        self.sock = _client_context(cafile).wrap_socket(raw, server_hostname=server_hostname)
        self.local_port = int(self.sock.getsockname()[1])
        self.requests = 0

    def get(self, path: str = "/", host: str | None = None) -> tuple[int, bytes]:
        """One ``GET`` on this connection; fails if the server closed it."""
        request = f"GET {path} HTTP/1.1\r\nHost: {host or self.server_hostname}\r\n\r\n"
        self.sock.sendall(request.encode("ascii"))
        response = http.client.HTTPResponse(self.sock)
        response.begin()
        body = response.read()
        assert not response.will_close, "the gateway ended the keepalive connection"
        self.requests += 1
        return response.status, body

    @property
    def peer_certificate(self) -> x509.Certificate:
        der = self.sock.getpeercert(binary_form=True)
        assert der is not None
        return x509.load_der_x509_certificate(der)

    def close(self) -> None:
        self.sock.close()


def wait_until(probe: Callable[[], Any], predicate: Callable[[Any], bool], timeout: float = TIMEOUT) -> Any:
    """Call ``probe`` until ``predicate(result)`` holds (bounded); returns the last result.

    Used where the gateway applies a change asynchronously (the snapshot is rebuilt after an Admin API commit):
    each probe is a real handshake, so this polls the observable outcome, not a clock.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if predicate(result) or time.monotonic() > deadline:
            return result
