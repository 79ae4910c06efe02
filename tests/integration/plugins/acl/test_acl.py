"""The acl plugin end to end (issue 14, item 2): curl and Python ``ssl`` clients against the real gateway process.

The walk-through of Kong's blog: mtls-auth verifies the client certificate and, with ``skip_consumer_lookup``, makes
its CN (or DN) the authenticated group; the acl plugin allows or denies that group. Then the consumer flavour:
mtls-auth matches the certificate's CN to a consumer and the acl reads the consumer's groups (``/consumers/{c}/acls``).
Routes on one ``ssl`` listener, all to an nginx that echoes the group and consumer headers it received:

- ``/walk``     mtls-auth (skip lookup, group by CN) + acl allow ``admins``
- ``/deny``     mtls-auth (skip lookup, group by CN) + acl deny ``banned``
- ``/dn``       mtls-auth (skip lookup, group by DN) + acl allow ``CN=admins``
- ``/hidden``   mtls-auth (skip lookup, group by CN) + acl allow ``admins`` with ``hide_groups_header``
- ``/nogroup``  mtls-auth (skip lookup, ``authenticated_group_by`` null) + acl allow ``admins``
- ``/consumer`` mtls-auth (consumer lookup) + acl allow ``gold``; ``/consumer-deny`` the same with deny ``banned``
- ``/anon``     mtls-auth with ``anonymous`` + acl allow ``gold``
- ``/noauth``   acl allow ``admins`` and no authentication plugin
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.fixtures.admin_client import Admin
from tests.fixtures.gateway_process import GatewayProcess, make_gateway
from tests.fixtures.nginx import NginxServer
from tests.integration.plugins.acl.conftest import AclPki, echo
from tests.integration.plugins.mtls_auth.conftest import PythonClient, Reply, curl, start_gateway, wait_until

FORBIDDEN = "You cannot consume this service"


@dataclass
class Setup:
    gw: GatewayProcess
    admin: Admin
    port: int


def _skip_lookup(ca: str, group_by: str | None = "CN") -> dict[str, object]:
    return {
        "name": "mtls-auth",
        "config": {"ca_certificates": [ca], "skip_consumer_lookup": True, "authenticated_group_by": group_by},
    }


def _routes(ca: str) -> dict[str, list[dict[str, object]]]:
    mtls: dict[str, object] = {"name": "mtls-auth", "config": {"ca_certificates": [ca]}}
    return {
        "walk": [_skip_lookup(ca), {"name": "acl", "config": {"allow": ["admins"]}}],
        "deny": [_skip_lookup(ca), {"name": "acl", "config": {"deny": ["banned"]}}],
        "dn": [_skip_lookup(ca, "DN"), {"name": "acl", "config": {"allow": ["CN=admins"]}}],
        "hidden": [_skip_lookup(ca), {"name": "acl", "config": {"allow": ["admins"], "hide_groups_header": True}}],
        "nogroup": [_skip_lookup(ca, None), {"name": "acl", "config": {"allow": ["admins"]}}],
        "consumer": [mtls, {"name": "acl", "config": {"allow": ["gold"]}}],
        "consumer-deny": [mtls, {"name": "acl", "config": {"deny": ["banned"]}}],
        "anon": [
            {"name": "mtls-auth", "config": {"ca_certificates": [ca], "anonymous": "anon"}},
            {"name": "acl", "config": {"allow": ["gold"]}},
        ],
        "noauth": [{"name": "acl", "config": {"allow": ["admins"]}}],
    }


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, groups_upstream: NginxServer, acl_pki: AclPki) -> Iterator[Setup]:
    gw = start_gateway(tmp_path_factory.mktemp("acl-gw"))
    admin = Admin(gw)
    try:
        ca = admin.post("/ca_certificates", {"cert": acl_pki.root.cert_pem})["id"]
        admin.post("/services", {"name": "echo", "url": f"http://127.0.0.1:{groups_upstream.port}"})
        for name, plugins in _routes(ca).items():
            admin.post("/services/echo/routes", {"name": name, "paths": [f"/{name}"]})
            for plugin in plugins:
                admin.post(f"/routes/{name}/plugins", plugin)
        for username in ("alice", "dave", "anon"):
            admin.post("/consumers", {"username": username})
        admin.post("/consumers/alice/acls", {"group": "gold"})
        admin.post("/consumers/alice/acls", {"group": "silver"})
        port = gw.proxy_ssl_port
        assert port is not None
        ready = wait_until(lambda: _get(port, "/walk", acl_pki, "admins"), lambda r: r.status == 200)
        assert ready.status == 200, ready
        yield Setup(gw, admin, port)
    finally:
        admin.close()
        assert gw.stop() == 0


def _get(port: int, path: str, pki: AclPki, client: str | None, *headers: str) -> Reply:
    files = pki[client] if client is not None else None
    return curl(port, path, cert=files.chain if files else None, key=files.key if files else None, headers=headers)


def _kong_error(reply: Reply, status: int, message: str) -> None:
    """``kong.response.error``: JSON with the request id, which is also the response's ``X-Kong-Request-Id``."""
    assert reply.status == status, reply
    assert reply.headers["content-type"] == "application/json; charset=utf-8"
    body = json.loads(reply.body)
    assert body == {"message": message, "request_id": reply.headers["x-kong-request-id"]}


# ------------------------------------------------------------------------------------------------ the walk-through
def test_walk_through_allowed_group_gets_200_with_its_group_upstream(setup: Setup, acl_pki: AclPki) -> None:
    reply = _get(setup.port, "/walk", acl_pki, "admins")
    assert reply.status == 200
    assert echo(reply.body) == {"cg": "", "ag": "admins", "user": "", "anon": ""}


def test_walk_through_another_group_gets_403(setup: Setup, acl_pki: AclPki) -> None:
    _kong_error(_get(setup.port, "/walk", acl_pki, "guests"), 403, FORBIDDEN)


def test_walk_through_a_denied_group_gets_403_the_others_pass(setup: Setup, acl_pki: AclPki) -> None:
    _kong_error(_get(setup.port, "/deny", acl_pki, "banned"), 403, FORBIDDEN)
    reply = _get(setup.port, "/deny", acl_pki, "guests")
    assert (reply.status, echo(reply.body)["ag"]) == (200, "guests")


def test_group_by_dn(setup: Setup, acl_pki: AclPki) -> None:
    reply = _get(setup.port, "/dn", acl_pki, "admins")
    assert (reply.status, echo(reply.body)["ag"]) == (200, "CN=admins")
    _kong_error(_get(setup.port, "/dn", acl_pki, "guests"), 403, FORBIDDEN)


def test_403_follows_the_accept_header(setup: Setup, acl_pki: AclPki) -> None:
    reply = _get(setup.port, "/walk", acl_pki, "guests", "Accept: text/plain")
    assert (reply.status, reply.headers["content-type"]) == (403, "text/plain; charset=utf-8")
    assert reply.body == f"{FORBIDDEN}\nrequest_id: {reply.headers['x-kong-request-id']}\n"


def test_keepalive_connection_keeps_its_verdict(setup: Setup, acl_pki: AclPki) -> None:
    for client, status in (("admins", 200), ("guests", 403)):
        conn = PythonClient(setup.port, chain=acl_pki[client].chain, key=acl_pki[client].key)
        try:
            assert [conn.get("/walk").status for _ in range(4)] == [status] * 4
        finally:
            conn.close()


# ------------------------------------------------------------------------------------------------ consumers
def test_consumer_groups_go_upstream_in_the_stores_order(setup: Setup, acl_pki: AclPki) -> None:
    groups = [row["group"] for row in setup.admin.get("/consumers/alice/acls")["data"]]
    assert sorted(groups) == ["gold", "silver"]
    reply = _get(setup.port, "/consumer", acl_pki, "alice")
    assert reply.status == 200
    assert echo(reply.body) == {"cg": ", ".join(groups), "ag": "", "user": "alice", "anon": ""}


def test_a_consumer_outside_the_allowed_groups_gets_403(setup: Setup, acl_pki: AclPki) -> None:
    _kong_error(_get(setup.port, "/consumer", acl_pki, "dave"), 403, FORBIDDEN)


def test_a_consumer_without_groups_passes_a_deny_list_without_header(setup: Setup, acl_pki: AclPki) -> None:
    reply = _get(setup.port, "/consumer-deny", acl_pki, "dave", "X-Consumer-Groups: forged")
    assert (reply.status, echo(reply.body)["cg"], echo(reply.body)["user"]) == (200, "", "dave")


def test_group_changes_apply_to_the_next_request(setup: Setup, acl_pki: AclPki) -> None:
    """Kong invalidates a consumer's cached groups on acl writes; here each write builds a new snapshot."""
    setup.admin.http.put("/consumers/dave/acls/gold").raise_for_status()
    try:
        reply = wait_until(lambda: _get(setup.port, "/consumer", acl_pki, "dave"), lambda r: r.status == 200)
        assert (reply.status, echo(reply.body)["cg"]) == (200, "gold")
    finally:
        setup.admin.delete("/consumers/dave/acls/gold")
    reply = wait_until(lambda: _get(setup.port, "/consumer", acl_pki, "dave"), lambda r: r.status == 403)
    _kong_error(reply, 403, FORBIDDEN)


def test_forged_group_headers_never_reach_the_upstream(setup: Setup, acl_pki: AclPki) -> None:
    forged = ("X-Consumer-Groups: gold, admins", "X-Authenticated-Groups: admins")
    reply = _get(setup.port, "/consumer", acl_pki, "alice", *forged)
    assert echo(reply.body)["ag"] == ""
    assert "admins" not in echo(reply.body)["cg"]
    reply = _get(setup.port, "/walk", acl_pki, "admins", *forged)
    assert (echo(reply.body)["cg"], echo(reply.body)["ag"]) == ("", "admins")


def test_hide_groups_header(setup: Setup, acl_pki: AclPki) -> None:
    reply = _get(setup.port, "/hidden", acl_pki, "admins", "X-Authenticated-Groups: forged")
    assert reply.status == 200
    assert (echo(reply.body)["cg"], echo(reply.body)["ag"]) == ("", "")
    _kong_error(_get(setup.port, "/hidden", acl_pki, "guests"), 403, FORBIDDEN)


# ------------------------------------------------------------------------------------------------ 401s
def test_no_consumer_and_no_group_is_401(setup: Setup, acl_pki: AclPki) -> None:
    reply = curl(setup.gw.proxy_port, "/noauth", plain=True)
    _kong_error(reply, 401, "Unauthorized")
    _kong_error(_get(setup.port, "/noauth", acl_pki, "admins"), 401, "Unauthorized")  # a certificate alone is no group
    _kong_error(_get(setup.port, "/nogroup", acl_pki, "admins"), 401, "Unauthorized")  # authenticated_group_by null


def test_anonymous_consumer_without_groups_is_401_with_groups_200(setup: Setup, acl_pki: AclPki) -> None:
    _kong_error(_get(setup.port, "/anon", acl_pki, None), 401, "Unauthorized")
    setup.admin.post("/consumers/anon/acls", {"group": "gold"})
    try:
        reply = wait_until(lambda: _get(setup.port, "/anon", acl_pki, None), lambda r: r.status == 200)
        assert echo(reply.body) == {"cg": "gold", "ag": "", "user": "anon", "anon": "true"}
    finally:
        setup.admin.delete("/consumers/anon/acls/gold")


def test_a_cn_group_needs_a_cn(setup: Setup, acl_pki: AclPki) -> None:
    """mtls-auth (Kong's ``authenticate_group_by``) refuses before the acl runs: a plain ``kong.response.exit``."""
    reply = _get(setup.port, "/walk", acl_pki, "no-cn")
    assert (reply.status, reply.body) == (401, '{"message":"Certificate missing Common Name"}')


# ------------------------------------------------------------------------------------------------ kong.yml
KONG_YML = """\
_format_version: "3.0"
ca_certificates:
- id: 7f9b0c3e-0000-4000-8000-00000000ca01
  cert: |
{ca}
services:
- name: echo
  url: http://127.0.0.1:{upstream}
  routes:
  - name: consumer
    paths: [/consumer]
    plugins:
    - name: mtls-auth
      config:
        ca_certificates: [7f9b0c3e-0000-4000-8000-00000000ca01]
    - name: acl
      config:
        allow: [gold]
consumers:
- username: alice
  acls:
  - group: gold
- username: dave
acls:
- consumer: dave
  group: bronze
"""


def test_dbless_kong_yml_with_acls(tmp_path: pathlib.Path, groups_upstream: NginxServer, acl_pki: AclPki) -> None:
    ca = "\n".join("    " + line for line in acl_pki.root.cert_pem.strip().splitlines())
    kong_yml = tmp_path / "kong.yml"
    kong_yml.write_text(KONG_YML.format(ca=ca, upstream=groups_upstream.port))
    env = {"KONG_DATABASE": "off", "KONG_DECLARATIVE_CONFIG": str(kong_yml)}
    gw = make_gateway(tmp_path, env, ssl=True).start()
    try:
        port = gw.proxy_ssl_port
        assert port is not None
        reply = wait_until(lambda: _get(port, "/consumer", acl_pki, "alice"), lambda r: r.status == 200)
        assert (reply.status, echo(reply.body)["cg"]) == (200, "gold")
        _kong_error(_get(port, "/consumer", acl_pki, "dave"), 403, FORBIDDEN)
        admin = Admin(gw)
        try:
            groups = admin.get("/consumers/dave/acls")["data"]
            assert [row["group"] for row in groups] == ["bronze"]
        finally:
            admin.close()
    finally:
        assert gw.stop() == 0
