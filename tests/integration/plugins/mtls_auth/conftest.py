"""Fixtures for mtls-auth end to end: a client PKI, an nginx upstream that echoes the identity headers, helpers
for curl / ``openssl s_client`` / Python ``ssl`` clients, and the real gateway with an ``ssl`` listener.

PKI: two independent client CAs (A and B), each root -> intermediate -> leaves, so that a client can send its leaf
with or without the intermediate; CA A also issues an expired leaf.
"""

from __future__ import annotations

import http.client
import pathlib
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.fixtures.certs import Issued, days, make_ca, make_cert
from tests.fixtures.gateway_process import GatewayProcess, make_gateway
from tests.fixtures.nginx import NginxRunner, NginxServer

TIMEOUT = 15.0

ECHO_FIELDS = {
    "id": "x_consumer_id",
    "user": "x_consumer_username",
    "cid": "x_consumer_custom_id",
    "anon": "x_anonymous_consumer",
    "cred": "x_credential_identifier",
    "dn": "x_client_cert_dn",
    "san": "x_client_cert_san",
    "cert": "x_client_cert",
    "serial": "x_client_cert_serial",
    "idn": "x_client_cert_issuer_dn",
    "sdn": "x_client_cert_subject_dn",
    "fp": "x_client_cert_fingerprint",
}

_ECHO = "|".join(f"{key}=$http_{var}" for key, var in ECHO_FIELDS.items())
UPSTREAM = (
    f'server {{\n    listen 127.0.0.1:{{port}};\n    location / {{\n        return 200 "{_ECHO}\\n";\n    }}\n}}\n'
)


def parse_echo(body: str) -> dict[str, str]:
    """The upstream's echo line -> {field: value} (empty string for an absent header)."""
    fields = {}
    for part in body.strip().split("|"):
        key, _, value = part.partition("=")
        fields[key] = value
    return fields


@dataclass
class Client:
    """A client identity with its files: ``leaf`` (leaf only), ``chain`` (leaf + intermediates), ``key``."""

    issued: Issued
    leaf: str
    chain: str
    key: str
    inter: str | None

    @property
    def combined(self) -> str:
        """chain + key in one file (``ab -E``)."""
        return self.chain + ".combined"


def _client(directory: pathlib.Path, name: str, issued: Issued) -> Client:
    leaf = directory / f"{name}.leaf.pem"
    chain = directory / f"{name}.chain.pem"
    key = directory / f"{name}.key.pem"
    leaf.write_text(issued.cert_pem)
    chain.write_text(issued.chain_pem)
    key.write_text(issued.key_pem)
    (directory / f"{name}.chain.pem.combined").write_text(issued.chain_pem + issued.key_pem)
    inter = None
    if issued.parents and issued.parents[0].cert.issuer != issued.parents[0].cert.subject:
        inter_path = directory / f"{name}.inter.pem"
        inter_path.write_text(issued.parents[0].cert_pem)
        inter = str(inter_path)
    return Client(issued, str(leaf), str(chain), str(key), inter)


@dataclass
class ClientPki:
    root_a: Issued
    inter_a: Issued
    root_b: Issued
    inter_b: Issued
    alice: Client  # CA A, CN client-a (a consumer's username)
    bob: Client  # CA A, CN bob, SAN bob.example.com (mapped by an mtls_auth_credential)
    carol: Client  # CA A, matched by custom_id
    nobody: Client  # CA A, no consumer matches
    expired: Client  # CA A, expired
    other: Client  # CA B, CN client-b (a consumer's username)
    self_signed: Client
    directory: pathlib.Path


@pytest.fixture(scope="session")
def client_pki(tmp_path_factory: pytest.TempPathFactory) -> ClientPki:
    directory = tmp_path_factory.mktemp("client-pki")
    root_a = make_ca("mTLS Root A")
    inter_a = make_ca("mTLS Intermediate A", issuer=root_a)
    root_b = make_ca("mTLS Root B", key_type="ec")
    inter_b = make_ca("mTLS Intermediate B", issuer=root_b, key_type="ec")
    return ClientPki(
        root_a=root_a,
        inter_a=inter_a,
        root_b=root_b,
        inter_b=inter_b,
        alice=_client(directory, "alice", make_cert("client-a", inter_a, sans=["alice.example.com"])),
        bob=_client(directory, "bob", make_cert("bob", inter_a, sans=["bob.example.com"])),
        carol=_client(directory, "carol", make_cert("carol", inter_a, key_type="ec", sans=["carol-42"])),
        nobody=_client(directory, "nobody", make_cert("nobody", inter_a, sans=["nobody.example.com"])),
        expired=_client(directory, "expired", make_cert("client-a", inter_a, not_before=days(-30), not_after=days(-1))),
        other=_client(directory, "other", make_cert("client-b", inter_b, key_type="ec")),
        self_signed=_client(directory, "self", make_cert("client-a")),
        directory=directory,
    )


@pytest.fixture(scope="module")
def echo_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NginxServer]:
    runner = NginxRunner(tmp_path_factory.mktemp("echo-upstream"))
    try:
        yield runner.start(UPSTREAM)
    finally:
        runner.stop_all()


def start_gateway(tmp_path: pathlib.Path, extra_env: dict[str, str] | None = None) -> GatewayProcess:
    return make_gateway(tmp_path, extra_env, ssl=True).start()


# ------------------------------------------------------------------------------------------------ clients
@dataclass
class Reply:
    status: int
    body: str
    headers: dict[str, str]

    @property
    def echo(self) -> dict[str, str]:
        return parse_echo(self.body)


def curl(
    port: int,
    path: str,
    *,
    cert: str | None = None,
    key: str | None = None,
    sni: str | None = None,
    headers: tuple[str, ...] = (),
    plain: bool = False,
) -> Reply:
    """One request with curl (``--cert``/``--key`` when given; ``sni`` via ``--resolve``); -k for the server cert."""
    host = sni or "localhost"
    scheme = "http" if plain else "https"
    args = ["curl", "-sS", "-k", "--max-time", str(int(TIMEOUT)), "-i", "--resolve", f"{host}:{port}:127.0.0.1"]
    if cert is not None:
        args += ["--cert", cert]
    if key is not None:
        args += ["--key", key]
    for header in headers:
        args += ["-H", header]
    args.append(f"{scheme}://{host}:{port}{path}")
    proc = subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT + 5)
    assert proc.returncode == 0, proc.stderr
    return _parse_raw(proc.stdout)


def _parse_raw(raw: str) -> Reply:
    head, _, body = raw.replace("\r\n", "\n").partition("\n\n")
    lines = head.split("\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Reply(status, body, headers)


def s_client_request(
    port: int,
    path: str,
    *,
    sni: str | None = None,
    cert: str | None = None,
    key: str | None = None,
    cert_chain: str | None = None,
    extra: tuple[str, ...] = (),
) -> tuple[str, Reply | None]:
    """``openssl s_client`` sends one request; returns (full output, parsed reply or None)."""
    args = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-ign_eof"]
    args += ["-servername", sni] if sni else ["-noservername"]
    if cert:
        args += ["-cert", cert]
    if key:
        args += ["-key", key]
    if cert_chain:
        args += ["-cert_chain", cert_chain]
    args += list(extra)
    request = f"GET {path} HTTP/1.1\r\nHost: {sni or 'localhost'}\r\nConnection: close\r\n\r\n"
    proc = subprocess.run(args, input=request.encode(), capture_output=True, timeout=TIMEOUT)
    out = proc.stdout.decode("latin-1")
    at = out.find("HTTP/1.1 ")
    reply = _parse_raw(out[at:]) if at != -1 else None
    return out + proc.stderr.decode("latin-1"), reply


class PythonClient:
    """A keepalive HTTPS connection with Python's ``ssl`` (optionally presenting a certificate chain)."""

    def __init__(self, port: int, *, chain: str | None = None, key: str | None = None, sni: str = "localhost"):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        if chain is not None:
            ctx.load_cert_chain(chain, key)
        raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.sni = sni
        self.sock = ctx.wrap_socket(raw, server_hostname=sni)

    def get(self, path: str, headers: dict[str, str] | None = None) -> Reply:
        lines = [f"GET {path} HTTP/1.1", f"Host: {self.sni}"] + [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        response = http.client.HTTPResponse(self.sock)
        response.begin()
        body = response.read().decode("latin-1")
        return Reply(response.status, body, {k.lower(): v for k, v in response.getheaders()})

    def close(self) -> None:
        self.sock.close()


def wait_until(probe: Callable[[], Any], predicate: Callable[[Any], bool], timeout: float = TIMEOUT) -> Any:
    """Probe until ``predicate`` holds (bounded): an Admin API write reaches the proxy asynchronously."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if predicate(result) or time.monotonic() > deadline:
            return result
        time.sleep(0.05)
