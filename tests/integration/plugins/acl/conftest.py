"""Fixtures for the acl plugin end to end: client certificates whose CN is a group (or a consumer's username), an
nginx upstream that echoes the group and consumer headers it received, and helpers shared with mtls-auth's tests."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.fixtures.certs import Issued, make_ca, make_cert
from tests.fixtures.nginx import NginxRunner, NginxServer

ECHO_FIELDS = {
    "cg": "x_consumer_groups",
    "ag": "x_authenticated_groups",
    "user": "x_consumer_username",
    "anon": "x_anonymous_consumer",
}
_ECHO = "|".join(f"{key}=$http_{var}" for key, var in ECHO_FIELDS.items())
UPSTREAM = (
    f'server {{\n    listen 127.0.0.1:{{port}};\n    location / {{\n        return 200 "{_ECHO}\\n";\n    }}\n}}\n'
)


@dataclass(frozen=True)
class ClientFiles:
    """A client certificate as curl takes it: the chain (leaf + intermediate) and the key, as files."""

    chain: str
    key: str


@dataclass(frozen=True)
class AclPki:
    root: Issued
    clients: dict[str, ClientFiles]
    """By name: ``admins``, ``guests``, ``banned`` (the CN is the group), ``alice``, ``dave`` (the CN is a consumer's
    username), ``no-cn`` (no subject at all, a SAN only)."""

    def __getitem__(self, name: str) -> ClientFiles:
        return self.clients[name]


@pytest.fixture(scope="session")
def acl_pki(tmp_path_factory: pytest.TempPathFactory) -> AclPki:
    directory: pathlib.Path = tmp_path_factory.mktemp("acl-pki")
    root = make_ca("ACL Walk-through Root")
    inter = make_ca("ACL Walk-through Intermediate", issuer=root)
    clients = {}
    for name in ("admins", "guests", "banned", "alice", "dave", "no-cn"):
        issued = make_cert(None if name == "no-cn" else name, inter, sans=[f"{name}.clients.test"])
        chain, key = directory / f"{name}.chain.pem", directory / f"{name}.key.pem"
        chain.write_text(issued.chain_pem)
        key.write_text(issued.key_pem)
        clients[name] = ClientFiles(str(chain), str(key))
    return AclPki(root, clients)


@pytest.fixture(scope="module")
def groups_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NginxServer]:
    runner = NginxRunner(tmp_path_factory.mktemp("acl-upstream"))
    try:
        yield runner.start(UPSTREAM)
    finally:
        runner.stop_all()


def echo(body: str) -> dict[str, str]:
    """The upstream's echo line -> {field: value} (empty string for an absent header)."""
    fields = {}
    for part in body.strip().split("|"):
        key, _, value = part.partition("=")
        fields[key] = value
    return fields
