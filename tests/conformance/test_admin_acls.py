"""The ``acls`` entity in the Admin API (Kong OSS ``kong/plugins/acl/daos.lua``, ``api.lua``; the cases of
``spec/03-plugins/18-acl/01-api_spec.lua`` re-expressed), and the ``acl`` plugin's config schema.

Every refused write is checked to leave the whole store (rows and version) as it was.
"""

from __future__ import annotations

import uuid
from typing import Any

from tests.conformance.conftest import Admin

CONSUMER_FIELDS = {"id", "created_at", "consumer", "group", "tags"}


class Unchanged:
    """The whole store and its version, before; ``check()`` asserts both are the same after."""

    def __init__(self, admin: Admin) -> None:
        self.admin = admin
        self.rows = admin.export()
        self.version = admin.db.version

    def check(self) -> None:
        assert self.admin.export() == self.rows, "a refused write changed the store"
        assert self.admin.db.version == self.version


async def _consumer(admin: Admin, username: str) -> dict[str, Any]:
    res = await admin.http.post("/consumers", json={"username": username})
    assert res.status_code == 201, res.text
    result: dict[str, Any] = res.json()
    return result


async def _acl(admin: Admin, consumer: str, group: str) -> dict[str, Any]:
    res = await admin.http.post(f"/consumers/{consumer}/acls", json={"group": group})
    assert res.status_code == 201, res.text
    result: dict[str, Any] = res.json()
    return result


def _schema_violation(fields: dict[str, Any], text: str) -> dict[str, Any]:
    return {"code": 2, "name": "schema violation", "message": f"schema violation ({text})", "fields": fields}


# ------------------------------------------------------------------------------------------------ create
async def test_create_under_a_consumer_json_and_form(admin: Admin) -> None:
    bob = await _consumer(admin, "bob")
    res = await admin.http.post("/consumers/bob/acls", json={"group": "admin"})
    assert res.status_code == 201, res.text
    acl = res.json()
    assert set(acl) == CONSUMER_FIELDS  # Kong's acls have no updated_at
    assert (acl["consumer"], acl["group"], acl["tags"]) == ({"id": bob["id"]}, "admin", None)
    assert isinstance(acl["created_at"], int) and uuid.UUID(acl["id"])
    res = await admin.http.post("/consumers/bob/acls/", data={"group": "yoloers", "tags[]": ["tag1", "tag2"]})
    assert res.status_code == 201, res.text
    assert res.json()["tags"] == ["tag1", "tag2"]
    res = await admin.http.post(f"/consumers/{bob['id']}/acls", json={"group": "by-id", "tags": ["t"]})
    assert res.status_code == 201, res.text


async def test_create_errors_are_kongs_and_store_nothing(admin: Admin) -> None:
    await _consumer(admin, "bob")
    await _acl(admin, "bob", "admin")
    before = Unchanged(admin)
    res = await admin.http.post("/consumers/bob/acls", json={})
    assert (res.status_code, res.json()) == (
        400,
        _schema_violation({"group": "required field missing"}, "group: required field missing"),
    )
    res = await admin.http.post("/consumers/bob/acls", json={"group": 123})
    assert (res.status_code, res.json()["fields"]) == (400, {"group": "expected a string"})
    res = await admin.http.post("/consumers/bob/acls", json={"group": ""})
    assert (res.status_code, res.json()["fields"]) == (400, {"group": "length must be at least 1"})
    res = await admin.http.post("/consumers/bob/acls", json={"group": "x", "updated_at": 1})
    assert (res.status_code, res.json()["fields"]) == (400, {"updated_at": "unknown field"})
    res = await admin.http.post("/consumers/nobody/acls", json={"group": "x"})
    assert (res.status_code, res.json()) == (404, {"message": "Not found"})
    res = await admin.http.post("/acls", json={"group": "test-group"})
    assert (res.status_code, res.json()["message"]) == (400, "schema violation (consumer: required field missing)")
    missing = str(uuid.uuid4())
    res = await admin.http.post("/acls", json={"group": "x", "consumer": {"id": missing}})
    assert (res.status_code, res.json()) == (
        400,
        {
            "code": 4,
            "name": "foreign key violation",
            "message": f"the foreign key '{{id=\"{missing}\"}}' does not reference an existing 'consumers' entity.",
            "fields": {"consumer": {"id": missing}},
        },
    )
    before.check()


async def test_a_consumer_has_a_group_once_409(admin: Admin) -> None:
    bob = await _consumer(admin, "bob")
    await _consumer(admin, "alice")
    await _acl(admin, "bob", "admin")
    await _acl(admin, "alice", "admin")  # the same group for another consumer is fine
    before = Unchanged(admin)
    pretty = f'{{consumer={{id="{bob["id"]}"}},group="admin"}}'
    conflict = {
        "code": 5,
        "name": "unique constraint violation",
        "message": f"UNIQUE violation detected on '{pretty}'",
        "fields": {"consumer": {"id": bob["id"]}, "group": "admin"},
    }
    res = await admin.http.post("/consumers/bob/acls", json={"group": "admin"})
    assert (res.status_code, res.json()) == (409, conflict)
    res = await admin.http.post("/acls", json={"group": "admin", "consumer": {"username": "bob"}})
    assert (res.status_code, res.json()) == (409, conflict)
    other = await _acl(admin, "bob", "other")
    before = Unchanged(admin)
    res = await admin.http.patch(f"/acls/{other['id']}", json={"group": "admin"})
    assert (res.status_code, res.json()) == (409, conflict)
    res = await admin.http.put(f"/consumers/bob/acls/{uuid.uuid4()}", json={"group": "admin"})
    assert (res.status_code, res.json()) == (409, conflict)
    before.check()


async def test_top_level_create_resolves_the_consumer_by_username(admin: Admin) -> None:
    bob = await _consumer(admin, "bob")
    res = await admin.http.post("/acls", json={"group": "test-group", "consumer": {"username": "bob"}})
    assert res.status_code == 201, res.text
    assert res.json()["consumer"] == {"id": bob["id"]}
    res = await admin.http.post("/acls", json={"group": "g2", "consumer": {"id": bob["id"]}})
    assert (res.status_code, res.json()["group"]) == (201, "g2")


# ------------------------------------------------------------------------------------------------ read
async def test_list_nested_top_level_and_paginated(admin: Admin) -> None:
    await _consumer(admin, "bob")
    await _consumer(admin, "bob-the-builder")
    for consumer in ("bob", "bob-the-builder"):
        for i in range(1, 4):
            await _acl(admin, consumer, f"group{i}")
    nested = (await admin.http.get("/consumers/bob/acls")).json()
    assert len(nested["data"]) == 3 and nested["next"] is None
    for path in ("/acls", "/acls/"):
        assert len((await admin.http.get(path)).json()["data"]) == 6
    first = (await admin.http.get("/acls?size=3")).json()
    assert len(first["data"]) == 3 and first["offset"]
    assert first["next"] == f"/acls?offset={first['offset']}&size=3"
    second = (await admin.http.get("/acls", params={"size": 3, "offset": first["offset"]})).json()
    assert len(second["data"]) == 3 and "offset" not in second
    ids = [row["id"] for row in first["data"] + second["data"]]
    assert ids == sorted(ids) and len(set(ids)) == 6
    assert (await admin.http.get("/consumers/nobody/acls")).status_code == 404


async def test_get_by_id_or_group_only_through_its_consumer(admin: Admin) -> None:
    bob = await _consumer(admin, "bob")
    await _consumer(admin, "alice")
    acl = await _acl(admin, "bob", "hello")
    for path in (f"/consumers/bob/acls/{acl['id']}", "/consumers/bob/acls/hello", f"/acls/{acl['id']}"):
        res = await admin.http.get(path)
        assert (res.status_code, res.json()) == (200, acl), path
    for path in (f"/consumers/alice/acls/{acl['id']}", "/consumers/alice/acls/hello", f"/acls/{uuid.uuid4()}"):
        res = await admin.http.get(path)
        assert (res.status_code, res.json()) == (404, {"message": "Not found"}), path
    consumer = await admin.http.get(f"/acls/{acl['id']}/consumer")
    assert (consumer.status_code, consumer.json()) == (200, bob)
    # a group name that needs escaping in the path
    spaced = await _acl(admin, "bob", "with space/and slash")
    res = await admin.http.get("/consumers/bob/acls/with%20space%2Fand%20slash")
    assert (res.status_code, res.json()["id"]) == (200, spaced["id"])


async def test_the_same_group_under_two_consumers_is_two_acls(admin: Admin) -> None:
    await _consumer(admin, "anna")
    await _consumer(admin, "jack")
    anna = await _acl(admin, "anna", "foo")
    jack = (await admin.http.put("/consumers/jack/acls/foo")).json()
    assert anna["id"] != jack["id"]
    assert (await admin.http.get("/consumers/anna/acls/foo")).json() == anna
    assert (await admin.http.get("/consumers/jack/acls/foo")).json() == jack


# ------------------------------------------------------------------------------------------------ update
async def test_put_by_group_creates_or_keeps_it(admin: Admin) -> None:
    bob = await _consumer(admin, "bob")
    res = await admin.http.put("/consumers/bob/acls/pro", json={})
    assert res.status_code == 200, res.text
    created = res.json()
    assert (created["consumer"], created["group"]) == ({"id": bob["id"]}, "pro")
    again = await admin.http.put("/consumers/bob/acls/pro", json={"tags": ["x"]})
    assert (again.status_code, again.json()["id"], again.json()["tags"]) == (200, created["id"], ["x"])
    assert len(admin.export()["acls"]) == 1
    before = Unchanged(admin)
    res = await admin.http.put(f"/consumers/bob/acls/{uuid.uuid4()}", json={"group": 123})
    assert (res.status_code, res.json()["fields"]) == (400, {"group": "expected a string"})
    res = await admin.http.put(f"/acls/{uuid.uuid4()}", json={"group": "test-group"})
    assert (res.status_code, res.json()["message"]) == (400, "schema violation (consumer: required field missing)")
    res = await admin.http.put("/consumers/nobody/acls/pro", json={})
    assert (res.status_code, res.json()) == (404, {"message": "Not found"})
    before.check()
    new_id = str(uuid.uuid4())
    res = await admin.http.put(f"/acls/{new_id}", json={"group": "test-group", "consumer": {"id": bob["id"]}})
    assert (res.status_code, res.json()["id"], res.json()["group"]) == (200, new_id, "test-group")


async def test_patch_by_id_and_by_group(admin: Admin) -> None:
    await _consumer(admin, "bob")
    acl = await _acl(admin, "bob", "hello")
    res = await admin.http.patch(f"/consumers/bob/acls/{acl['id']}", json={"group": "updatedGroup"})
    assert (res.status_code, res.json()["group"], res.json()["id"]) == (200, "updatedGroup", acl["id"])
    res = await admin.http.patch("/consumers/bob/acls/updatedGroup", data={"group": "updatedGroup2"})
    assert (res.status_code, res.json()["group"]) == (200, "updatedGroup2")
    before = Unchanged(admin)
    res = await admin.http.patch(f"/consumers/bob/acls/{acl['id']}", json={"group": 123})
    assert (res.status_code, res.json()["fields"]) == (400, {"group": "expected a string"})
    res = await admin.http.patch(f"/acls/{acl['id']}", json={"group": None})
    assert (res.status_code, res.json()["fields"]) == (400, {"group": "required field missing"})
    res = await admin.http.patch("/consumers/bob/acls/hello", json={"group": "x"})  # the old name is gone
    assert (res.status_code, res.json()) == (404, {"message": "Not found"})
    missing = str(uuid.uuid4())
    res = await admin.http.patch(f"/acls/{missing}", json={"group": "x"})
    assert res.status_code == 404
    assert res.json()["message"] == f"could not find the entity with primary key '{{id=\"{missing}\"}}'"
    before.check()


# ------------------------------------------------------------------------------------------------ delete
async def test_delete_by_id_by_group_and_404s(admin: Admin) -> None:
    await _consumer(admin, "bob")
    acl = await _acl(admin, "bob", "hello")
    acl2 = await _acl(admin, "bob", "hello2")
    before = Unchanged(admin)
    for path in ("/consumers/bob/acls/blah", "/consumers/bob/acls/00000000-0000-0000-0000-000000000000"):
        res = await admin.http.delete(path)
        assert (res.status_code, res.json()) == (404, {"message": "Not found"}), path
    before.check()
    assert (await admin.http.delete(f"/consumers/bob/acls/{acl['id']}")).status_code == 204
    assert (await admin.http.delete(f"/consumers/bob/acls/{acl2['group']}")).status_code == 204
    assert admin.export()["acls"] == []
    assert (await admin.http.delete(f"/acls/{uuid.uuid4()}")).status_code == 204  # Kong's idempotent delete


async def test_deleting_the_consumer_deletes_its_acls(admin: Admin) -> None:
    await _consumer(admin, "bob")
    await _consumer(admin, "alice")
    await _acl(admin, "bob", "a")
    await _acl(admin, "bob", "b")
    kept = await _acl(admin, "alice", "a")
    assert (await admin.http.delete("/consumers/bob")).status_code == 204
    assert admin.export()["acls"] == [kept]


async def test_dbless_writes_are_refused_reads_served(dbless_admin: Admin) -> None:
    document = {"_format_version": "3.0", "consumers": [{"username": "bob", "acls": [{"group": "gold"}]}]}
    assert (await dbless_admin.http.post("/config", json=document)).status_code == 201
    before = Unchanged(dbless_admin)
    res = await dbless_admin.http.post("/consumers/bob/acls", json={"group": "silver"})
    assert (res.status_code, res.json()["message"]) == (405, "cannot create 'acls' entities when not using a database")
    res = await dbless_admin.http.delete("/consumers/bob/acls/gold")
    assert (res.status_code, res.json()["message"]) == (405, "cannot remove 'acls' entities when not using a database")
    before.check()
    assert [row["group"] for row in (await dbless_admin.http.get("/consumers/bob/acls")).json()["data"]] == ["gold"]


# ------------------------------------------------------------------------------------------------ the plugin
async def test_acl_plugin_config_schema(admin: Admin) -> None:
    res = await admin.http.post("/plugins", json={"name": "acl", "config": {"allow": ["admins"]}})
    assert res.status_code == 201, res.text
    assert res.json()["config"] == {
        "allow": ["admins"],
        "deny": None,
        "hide_groups_header": False,
        "always_use_authenticated_groups": False,
    }
    assert res.json()["protocols"] == ["grpc", "grpcs", "http", "https"]
    assert (await admin.http.delete(f"/plugins/{res.json()['id']}")).status_code == 204
    await _consumer(admin, "bob")
    before = Unchanged(admin)
    exactly = "exactly one of these fields must be non-empty: 'config.allow', 'config.deny'"
    at_least = "at least one of these fields must be non-empty: 'config.allow', 'config.deny'"
    empty: list[dict[str, Any]] = [{}, {"allow": [], "deny": []}]
    for config in empty:
        res = await admin.http.post("/plugins", json={"name": "acl", "config": config})
        assert (res.status_code, res.json()) == (
            400,
            {
                "code": 2,
                "name": "schema violation",
                "message": f"2 schema violations ({exactly}; {at_least})",
                "fields": {"@entity": [exactly, at_least]},
            },
        )
    res = await admin.http.post("/plugins", json={"name": "acl", "config": {"allow": ["a"], "deny": ["b"]}})
    assert (res.status_code, res.json()["fields"]) == (400, {"@entity": [exactly]})
    res = await admin.http.post("/plugins", json={"name": "acl", "config": {"allow": "a"}})
    assert (res.status_code, res.json()["fields"]) == (400, {"config": {"allow": "expected an array"}})
    res = await admin.http.post("/consumers/bob/plugins", json={"name": "acl", "config": {"allow": ["a"]}})
    assert (res.status_code, res.json()["fields"]) == (400, {"consumer": "value must be null"})
    res = await admin.http.post("/plugins", json={"name": "acl", "config": {"allow": ["a"], "whitelist": ["b"]}})
    assert (res.status_code, res.json()["fields"]) == (400, {"config": {"whitelist": "unknown field"}})
    before.check()
    form = await admin.http.post("/plugins", data={"name": "acl", "config.deny": "banned"})
    assert (form.status_code, form.json()["config"]["deny"]) == (201, ["banned"])
