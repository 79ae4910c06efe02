"""mtls-auth's authenticated group (``skip_consumer_lookup``), as Kong's ``authenticate_group_by`` sets it for the acl
plugin: the CN or the DN, nothing when ``authenticated_group_by`` is null, 401 for a CN group without a CN."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from gateway.plugins import BuildContext, Exit, PluginContext
from gateway.plugins.mtls_auth import MtlsAuth
from gateway.plugins.mtls_auth.names import rfc2253
from tests.fixtures.certs import Issued, make_ca, make_cert


class _Tls:
    def __init__(self, chain: list[Any]) -> None:
        self.peer_chain = chain


@pytest.fixture(scope="module")
def pki() -> tuple[Issued, Issued, Issued]:
    root = make_ca("Groups Root")
    return root, make_cert("admins", root), make_cert(None, root, sans=["no-cn.example.com"])


def _run(root: Issued, leaf: Issued, **config: Any) -> PluginContext:
    ca_id, anonymous = str(uuid.uuid4()), str(uuid.uuid4())
    build = BuildContext(
        {
            "ca_certificates": [{"id": ca_id, "cert": root.cert_pem}],
            "consumers": [{"id": anonymous, "username": "anon"}],
        }
    )
    settings = {"ca_certificates": [ca_id], "revocation_check_mode": "SKIP", "skip_consumer_lookup": True, **config}
    plugin = MtlsAuth({"id": str(uuid.uuid4()), "name": "mtls-auth", "config": settings}, build)
    ctx = PluginContext(tls=_Tls([leaf.cert]), conn_cache=None, headers=[], route_id=None, service_id=None)
    ctx.data["exit"] = plugin.access(ctx)
    return ctx


def test_cn_is_the_default_group(pki: tuple[Issued, Issued, Issued]) -> None:
    root, admins, _ = pki
    ctx = _run(root, admins)
    assert ctx.data["exit"] is None
    assert ctx.authenticated_groups == ("admins",)
    assert ctx.consumer is None and ctx.credential is None


def test_dn_group(pki: tuple[Issued, Issued, Issued]) -> None:
    root, admins, _ = pki
    ctx = _run(root, admins, authenticated_group_by="DN")
    assert ctx.authenticated_groups == (rfc2253(admins.cert.subject),) == ("CN=admins",)


def test_null_sets_no_group(pki: tuple[Issued, Issued, Issued]) -> None:
    root, admins, _ = pki
    ctx = _run(root, admins, authenticated_group_by=None)
    assert ctx.data["exit"] is None
    assert ctx.authenticated_groups is None
    assert ctx.upstream_headers["x-client-cert-dn"] == ("X-Client-Cert-DN", "CN=admins")


def test_cn_group_of_a_certificate_without_cn_is_401(pki: tuple[Issued, Issued, Issued]) -> None:
    root, _, no_cn = pki
    result = _run(root, no_cn).data["exit"]
    assert isinstance(result, Exit)
    assert (result.status, result.body) == (401, b'{"message":"Certificate missing Common Name"}')
    # by DN it has a group: the empty DN, as nginx's $ssl_client_s_dn
    assert _run(root, no_cn, authenticated_group_by="DN").authenticated_groups == ("",)
    # with anonymous the failure yields the anonymous consumer, without groups
    ctx = _run(root, no_cn, anonymous="anon")
    assert ctx.data["exit"] is None and ctx.consumer is not None and ctx.consumer["username"] == "anon"
    assert ctx.authenticated_groups is None
