"""A plugin this gateway does not run is refused on every Admin API path, with Kong's error, and nothing is stored.

Kong answers a plugin missing from its ``plugins`` setting with a 400 schema violation on ``name`` (``plugin 'x' not
enabled; add it to the 'plugins' configuration property``, ``plugins.lua``'s ``subschema_error``); the gateway
answers the same for every plugin it has no handler for, and says which plugins it runs. A write accepted and then
never run would let a test suite pass here and fail on Kong.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.conformance.conftest import Admin

NOT_RUN = ("basic-auth", "cors", "acme", "rate-limiting", "key-auth")
RUNS = "this gateway runs only acl, mtls-auth, prometheus, tls-metadata-headers"


def not_enabled(name: str) -> str:
    return f"plugin '{name}' not enabled; add it to the 'plugins' configuration property ({RUNS})"


def refusal(name: str) -> dict[str, Any]:
    """Kong's body (``kong/db/errors.lua`` schema violation), with the list of what runs here after its text."""
    return {
        "code": 2,
        "name": "schema violation",
        "message": f"schema violation (name: {not_enabled(name)})",
        "fields": {"name": not_enabled(name)},
    }


async def _parents(admin: Admin) -> dict[str, str]:
    """A service, a route and a consumer to nest plugins under; their ids by collection."""
    service = await admin.http.post("/services", json={"name": "svc", "url": "http://127.0.0.1:9/"})
    route = await admin.http.post("/services/svc/routes", json={"name": "rt", "paths": ["/"]})
    consumer = await admin.http.post("/consumers", json={"username": "alice"})
    for res in (service, route, consumer):
        assert res.status_code == 201, res.text
    return {"services": service.json()["id"], "routes": route.json()["id"], "consumers": consumer.json()["id"]}


class Unchanged:
    """The whole store and its version, before; ``check()`` asserts both are the same after."""

    def __init__(self, admin: Admin) -> None:
        self.admin = admin
        self.rows = admin.export()
        self.version = admin.db.version

    def check(self) -> None:
        assert self.admin.export() == self.rows, "a refused write changed the store"
        assert self.admin.db.version == self.version


@pytest.mark.parametrize("name", NOT_RUN)
async def test_post_is_refused_globally_and_under_every_parent(admin: Admin, name: str) -> None:
    ids = await _parents(admin)
    before = Unchanged(admin)
    paths = ["/plugins", "/services/svc/plugins", "/routes/rt/plugins", "/consumers/alice/plugins"]
    paths += [f"/{parent}/{ident}/plugins" for parent, ident in ids.items()]
    for path in paths:
        res = await admin.http.post(path, json={"name": name, "config": {}})
        assert (res.status_code, res.json()) == (400, refusal(name)), path
        # a form body is typed against the plugin's schema first: the same refusal
        res = await admin.http.post(path, data={"name": name, "config.minute": "5"})
        assert (res.status_code, res.json()) == (400, refusal(name)), path
        before.check()
    assert (await admin.http.get("/plugins")).json()["data"] == []


async def test_put_is_refused_for_a_new_id_an_instance_name_and_nested(admin: Admin) -> None:
    await _parents(admin)
    before = Unchanged(admin)
    for path in (
        f"/plugins/{uuid.uuid4()}",
        "/plugins/my-key-auth",
        f"/routes/rt/plugins/{uuid.uuid4()}",
        f"/services/svc/plugins/{uuid.uuid4()}",
        f"/consumers/alice/plugins/{uuid.uuid4()}",
    ):
        res = await admin.http.put(path, json={"name": "key-auth", "config": {"key_names": ["apikey"]}})
        assert (res.status_code, res.json()) == (400, refusal("key-auth")), path
        before.check()


async def test_patch_and_put_cannot_turn_a_plugin_into_one_not_run(admin: Admin) -> None:
    await _parents(admin)
    created = await admin.http.post("/services/svc/plugins", json={"name": "tls-metadata-headers"})
    assert created.status_code == 201, created.text
    plugin_id = created.json()["id"]
    before = Unchanged(admin)
    for path in (f"/plugins/{plugin_id}", f"/services/svc/plugins/{plugin_id}"):
        res = await admin.http.patch(path, json={"name": "rate-limiting"})
        assert (res.status_code, res.json()) == (400, refusal("rate-limiting")), path
        res = await admin.http.patch(path, data={"name": "rate-limiting", "config.minute": "5"})
        assert (res.status_code, res.json()) == (400, refusal("rate-limiting")), path
        res = await admin.http.put(path, json={"name": "rate-limiting", "config": {"minute": 5}})
        assert (res.status_code, res.json()) == (400, refusal("rate-limiting")), path
        before.check()
    got = await admin.http.get(f"/plugins/{plugin_id}")
    assert got.json()["name"] == "tls-metadata-headers"


async def test_schema_validation_endpoint_and_enabled_list_agree(admin: Admin) -> None:
    res = await admin.http.post("/schemas/plugins/validate", json={"name": "acme", "config": {}})
    assert (res.status_code, res.json()) == (400, refusal("acme"))
    res = await admin.http.post("/schemas/plugins/validate", json={"name": "tls-metadata-headers"})
    assert (res.status_code, res.json()) == (200, {"message": "schema validation successful"})
    enabled = await admin.http.get("/plugins/enabled")
    assert enabled.json() == {"enabled_plugins": ["acl", "mtls-auth", "prometheus", "tls-metadata-headers"]}
    root = (await admin.http.get("/")).json()
    assert sorted(root["plugins"]["available_on_server"]) == ["acl", "mtls-auth", "prometheus", "tls-metadata-headers"]


async def test_post_config_refuses_the_whole_document(dbless_admin: Admin) -> None:
    """``POST /config`` (DB-less): code 14 with the error at each plugin's path; the loaded configuration stays."""
    good = {"_format_version": "3.0", "services": [{"name": "kept", "url": "http://127.0.0.1:9/"}]}
    assert (await dbless_admin.http.post("/config", json=good)).status_code == 201
    before = Unchanged(dbless_admin)
    document = {
        "_format_version": "3.0",
        "services": [
            {
                "name": "svc",
                "url": "http://127.0.0.1:9/",
                "plugins": [{"name": "rate-limiting", "config": {"minute": 5}}],
                "routes": [{"name": "rt", "paths": ["/"], "plugins": [{"name": "key-auth", "config": {}}]}],
            }
        ],
        "plugins": [{"name": "tls-metadata-headers"}, {"name": "cors"}],
    }
    for body in ({"json": document}, {"json": {"config": _yaml(document)}}):
        res = await dbless_admin.http.post("/config", **body)
        assert res.status_code == 400, res.text
        got = res.json()
        assert (got["code"], got["name"]) == (14, "invalid declarative configuration")
        assert got["fields"] == {
            "plugins": [None, {"name": not_enabled("cors")}],
            "services": [
                {
                    "plugins": [{"name": not_enabled("rate-limiting")}],
                    "routes": [{"plugins": [{"name": not_enabled("key-auth")}]}],
                }
            ],
        }
        assert got["message"].startswith("declarative config is invalid: {plugins={[2]={name=\"plugin 'cors'")
        before.check()
    assert [s["name"] for s in (await dbless_admin.http.get("/services")).json()["data"]] == ["kept"]


def _yaml(document: dict[str, Any]) -> str:
    import yaml

    return str(yaml.safe_dump(document))
