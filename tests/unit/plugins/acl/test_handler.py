"""The acl handler's decision table (Kong's ``handler.lua``), without sockets: which groups count, 401/403, headers.

Each case builds the ``PluginContext`` an authentication plugin would leave behind (consumer, credential,
authenticated groups) and runs one compiled instance; the snapshot's ``acls`` rows are its consumer groups.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import pytest

from gateway.entities import SCHEMAS
from gateway.plugins import BuildContext, Exit, PluginContext, PluginIndex, run_access
from gateway.plugins.acl import Acl
from gateway.plugins.acl.handler import H_AUTHENTICATED_GROUPS, H_CONSUMER_GROUPS
from gateway.plugins.mtls_auth import MtlsAuth

ALICE = str(uuid.uuid4())  # groups: gold, silver
BOB = str(uuid.uuid4())  # no groups
EVE = str(uuid.uuid4())  # groups: banned


def _acl_rows() -> list[dict[str, Any]]:
    rows = []
    for consumer, group in ((ALICE, "gold"), (ALICE, "silver"), (EVE, "banned")):
        rows.append({"id": str(uuid.uuid4()), "consumer": {"id": consumer}, "group": group})
    return sorted(rows, key=lambda row: row["id"])  # the store exports in id order


ACLS = _acl_rows()
ALICE_GROUPS = ", ".join(row["group"] for row in ACLS if row["consumer"]["id"] == ALICE)


def _config(**config: Any) -> dict[str, Any]:
    """A complete acl config as the store holds it (defaults filled by the entity schema)."""
    schema = SCHEMAS["plugins"]
    row = schema.process_auto_fields({"name": "acl", "config": config}, "insert")
    assert schema.validate(row) == {}, schema.validate(row)
    result: dict[str, Any] = row["config"]
    return result


def _acl(**config: Any) -> Acl:
    build = BuildContext({"acls": ACLS, "consumers": [{"id": c} for c in (ALICE, BOB, EVE)]})
    return Acl.compile({"id": str(uuid.uuid4()), "name": "acl", "config": _config(**config)}, build)


def _ctx(
    consumer: str | None = None,
    credential: Mapping[str, Any] | None = None,
    groups: tuple[str, ...] | None = None,
) -> PluginContext:
    ctx = PluginContext(tls=None, conn_cache=None, headers=[], route_id="r", service_id=None)
    ctx.consumer = {"id": consumer} if consumer is not None else None
    ctx.credential = credential
    ctx.authenticated_groups = groups
    return ctx


def _cred(consumer: str) -> dict[str, Any]:
    return {"consumer": {"id": consumer}}


def _refused(result: Exit | None, status: int, message: str) -> None:
    assert result is not None and (result.status, result.error) == (status, message)


def _headers(ctx: PluginContext) -> dict[str, str | None]:
    return {name: value for name, value in ctx.upstream_headers.values()}


# ------------------------------------------------------------------------------------------------ no consumer
def test_no_consumer_and_no_groups_is_401_unauthorized() -> None:
    _refused(_acl(allow=["gold"]).access(_ctx()), 401, "Unauthorized")
    _refused(_acl(deny=["gold"]).access(_ctx()), 401, "Unauthorized")


def test_a_credential_without_consumer_is_403() -> None:
    _refused(_acl(allow=["gold"]).access(_ctx(credential={"id": "c"})), 403, "You cannot consume this service")


def test_authenticated_groups_without_consumer_allow_and_deny() -> None:
    ctx = _ctx(groups=("admins",))
    assert _acl(allow=["admins", "ops"]).access(ctx) is None
    assert _headers(ctx) == {H_AUTHENTICATED_GROUPS: "admins", H_CONSUMER_GROUPS: None}
    _refused(_acl(allow=["ops"]).access(_ctx(groups=("admins",))), 403, "You cannot consume this service")
    _refused(_acl(deny=["admins"]).access(_ctx(groups=("admins",))), 403, "You cannot consume this service")
    ctx = _ctx(groups=("guests",))
    assert _acl(deny=["admins"]).access(ctx) is None
    assert _headers(ctx)[H_AUTHENTICATED_GROUPS] == "guests"


def test_empty_authenticated_groups_are_groups_nevertheless() -> None:
    """Kong: an empty table is not nil, so it is checked (and, allowed by a deny list, sent as "" = removed)."""
    _refused(_acl(allow=["admins"]).access(_ctx(groups=())), 403, "You cannot consume this service")
    ctx = _ctx(groups=())
    assert _acl(deny=["admins"]).access(ctx) is None
    assert _headers(ctx) == {H_AUTHENTICATED_GROUPS: None, H_CONSUMER_GROUPS: None}


# ------------------------------------------------------------------------------------------------ consumers
def test_consumer_groups_allow_and_their_header_in_store_order() -> None:
    ctx = _ctx(ALICE, _cred(ALICE))
    assert _acl(allow=["silver"]).access(ctx) is None
    assert _headers(ctx) == {H_CONSUMER_GROUPS: ALICE_GROUPS, H_AUTHENTICATED_GROUPS: None}
    _refused(_acl(allow=["platinum"]).access(_ctx(ALICE, _cred(ALICE))), 403, "You cannot consume this service")


def test_consumer_groups_deny() -> None:
    _refused(_acl(deny=["banned"]).access(_ctx(EVE, _cred(EVE))), 403, "You cannot consume this service")
    ctx = _ctx(ALICE, _cred(ALICE))
    assert _acl(deny=["banned"]).access(ctx) is None
    assert _headers(ctx)[H_CONSUMER_GROUPS] == ALICE_GROUPS


def test_a_consumer_without_groups_under_allow_is_403_with_a_credential_401_without() -> None:
    _refused(_acl(allow=["gold"]).access(_ctx(BOB, _cred(BOB))), 403, "You cannot consume this service")
    _refused(_acl(allow=["gold"]).access(_ctx(BOB)), 401, "Unauthorized")


def test_a_consumer_without_groups_passes_a_deny_list_and_the_header_is_removed() -> None:
    ctx = _ctx(BOB, _cred(BOB))
    assert _acl(deny=["banned"]).access(ctx) is None
    assert _headers(ctx) == {H_CONSUMER_GROUPS: None, H_AUTHENTICATED_GROUPS: None}


def test_the_consumer_can_come_from_the_credential_alone() -> None:
    ctx = _ctx(None, _cred(ALICE))
    assert _acl(allow=["gold"]).access(ctx) is None
    assert _headers(ctx)[H_CONSUMER_GROUPS] == ALICE_GROUPS


# ------------------------------------------------------------------------------------------------ which groups
def test_anonymous_consumer_uses_authenticated_groups_when_there_are_some() -> None:
    """A consumer without credential (mtls-auth's ``anonymous``): authenticated groups win, else its own."""
    ctx = _ctx(ALICE, None, ("admins",))
    assert _acl(allow=["admins"]).access(ctx) is None
    assert _headers(ctx) == {H_AUTHENTICATED_GROUPS: "admins", H_CONSUMER_GROUPS: None}
    ctx = _ctx(ALICE, None, None)
    assert _acl(allow=["gold"]).access(ctx) is None
    assert _headers(ctx)[H_CONSUMER_GROUPS] == ALICE_GROUPS


def test_always_use_authenticated_groups() -> None:
    with_credential = _ctx(ALICE, _cred(ALICE), ("admins",))
    _refused(_acl(allow=["admins"]).access(with_credential), 403, "You cannot consume this service")
    ctx = _ctx(ALICE, _cred(ALICE), ("admins",))
    assert _acl(allow=["admins"], always_use_authenticated_groups=True).access(ctx) is None
    assert _headers(ctx) == {H_AUTHENTICATED_GROUPS: "admins", H_CONSUMER_GROUPS: None}
    # no authenticated groups: falls back to the consumer's
    ctx = _ctx(ALICE, _cred(ALICE), None)
    assert _acl(allow=["gold"], always_use_authenticated_groups=True).access(ctx) is None
    assert _headers(ctx)[H_CONSUMER_GROUPS] == ALICE_GROUPS


@pytest.mark.parametrize("ctx", [_ctx(ALICE, _cred(ALICE)), _ctx(groups=("gold",))])
def test_hide_groups_header_removes_both_headers(ctx: PluginContext) -> None:
    assert _acl(allow=["gold"], hide_groups_header=True).access(ctx) is None
    assert _headers(ctx) == {H_CONSUMER_GROUPS: None, H_AUTHENTICATED_GROUPS: None}


def test_header_values_cannot_split_the_head() -> None:
    ctx = _ctx(groups=("a\r\nX-Injected: 1", "é"))
    assert _acl(deny=["x"]).access(ctx) is None
    value = _headers(ctx)[H_AUTHENTICATED_GROUPS]
    assert value == "a  X-Injected: 1, " + "é".encode().decode("latin-1")


def test_verdicts_are_remembered_per_consumer_and_follow_a_new_snapshot() -> None:
    acl = _acl(allow=["gold"])
    first = _ctx(ALICE, _cred(ALICE))
    acl.access(first)
    assert ALICE in acl._by_consumer
    # a snapshot without alice's groups compiles a new instance, which refuses her
    build = BuildContext({"acls": [], "consumers": [{"id": ALICE}]})
    fresh = Acl.compile({"id": acl.id, "name": "acl", "config": _config(allow=["gold"])}, build)
    _refused(fresh.access(_ctx(ALICE, _cred(ALICE))), 403, "You cannot consume this service")


def test_acl_runs_after_mtls_auth_in_a_chain() -> None:
    route = str(uuid.uuid4())
    config = {
        "routes": [{"id": route, "service": None}],
        "ca_certificates": [],
        "plugins": [
            {
                "id": str(uuid.uuid4()),
                "name": "acl",
                "enabled": True,
                "route": {"id": route},
                "config": _config(allow=["a"]),
            },
            {
                "id": str(uuid.uuid4()),
                "name": "mtls-auth",
                "enabled": True,
                "route": {"id": route},
                "config": {"ca_certificates": []},
            },
        ],
    }
    chain = PluginIndex.build(config).chain(route)
    assert chain is not None
    assert [slot.name for slot in chain.slots] == ["mtls-auth", "acl"]
    assert Acl.PRIORITY == 950 < MtlsAuth.PRIORITY
    # plain HTTP: mtls-auth answers first, the acl never runs
    result = run_access(chain, _ctx())
    assert isinstance(result, Exit) and result.status == 401 and result.error is None
