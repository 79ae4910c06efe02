"""Routing, status codes, pagination and DB-less rules, through ``AdminApp.handle`` over the fake store."""

from __future__ import annotations

import uuid
from typing import Any

from gateway.admin.router import Router
from tests.unit.admin.conftest import Client


async def _noop(ctx: Any) -> Any:
    return None


def test_literal_segments_beat_params() -> None:
    router = Router()
    router.add("/upstreams/:upstreams/targets/:targets", "GET", _noop)
    router.add("/upstreams/:upstreams/targets/all", "GET", _noop)
    matched = router.match("/upstreams/u1/targets/all")
    assert matched is not None and matched[0].pattern == "/upstreams/:upstreams/targets/all"
    matched = router.match("/upstreams/u1/targets/t1/")
    assert matched is not None and matched[1] == {"upstreams": "u1", "targets": "t1"}
    assert router.match("/upstreams/u1/targets/t1/x") is None


async def test_unknown_path_and_method(client: Client) -> None:
    assert await client.request("GET", "/nope") == (
        404,
        await _headers(client, "GET", "/nope"),
        {"message": "Not found"},
    )
    status, _, body = await client.request("DELETE", "/services")
    assert (status, body) == (405, {"message": "Method not allowed"})


async def _headers(client: Client, method: str, target: str) -> dict[str, str]:
    return (await client.request(method, target))[1]


async def test_trailing_slash_and_cors_headers(client: Client) -> None:
    status, headers, body = await client.request("GET", "/services/")
    assert (status, body) == (200, {"data": [], "next": None})
    assert headers["access-control-allow-origin"] == "*"
    assert headers["server"].startswith("kong/")


async def test_options_lists_methods(client: Client) -> None:
    status, headers, _ = await client.request("OPTIONS", "/services")
    assert status == 204
    assert headers["allow"] == "GET, HEAD, OPTIONS, POST"


async def test_head_has_no_body(client: Client) -> None:
    status, headers, body = await client.request("HEAD", "/services")
    assert (status, body) == (200, b"")
    assert headers["content-length"] == str(len(b'{"data":[],"next":null}'))


async def test_empty_collection_is_exact(client: Client) -> None:
    status, _, body = await client.app.handle("GET", "/certificates")
    assert (status, body) == (200, b'{"data":[],"next":null}')


async def test_pagination_links(client: Client) -> None:
    for i in range(5):
        status, _, _ = await client.request("POST", "/services", {"name": f"s{i}", "host": "example.test"})
        assert status == 201
    status, _, page1 = await client.request("GET", "/services?size=2")
    assert status == 200 and len(page1["data"]) == 2
    assert page1["next"] == f"/services?offset={page1['offset'].replace('=', '%3D')}&size=2"
    _, _, page2 = await client.request("GET", page1["next"])
    _, _, page3 = await client.request("GET", page2["next"])
    assert [s["name"] for s in page1["data"] + page2["data"] + page3["data"]] == [f"s{i}" for i in range(5)]
    assert page3["next"] is None and "offset" not in page3


async def test_size_errors(client: Client) -> None:
    status, _, body = await client.request("GET", "/services?size=abc")
    assert (status, body) == (400, {"code": 9, "name": "invalid size", "message": "size must be a number"})
    status, _, body = await client.request("GET", "/services?size=1001")
    assert status == 400 and body["message"] == "size must be an integer between 1 and 1000"
    status, _, body = await client.request("GET", "/services?offset=x!")
    assert status == 400 and body["name"] == "invalid offset"


async def test_nested_collection_next_and_parent_404(client: Client) -> None:
    _, _, svc = await client.request("POST", "/services", {"name": "svc", "host": "example.test"})
    for i in range(3):
        status, _, route = await client.request("POST", "/services/svc/routes", {"paths": [f"/r{i}"]})
        assert status == 201 and route["service"] == {"id": svc["id"]}
    _, _, page = await client.request("GET", "/services/svc/routes?size=2")
    assert page["next"].startswith("/services/svc/routes?offset=") and "size" not in page["next"]
    status, _, body = await client.request("GET", "/services/nope/routes")
    assert (status, body) == (404, {"message": "Not found"})
    status, _, body = await client.request("POST", "/services/nope/routes", {"paths": ["/x"]})
    assert (status, body) == (404, {"message": "Not found"})


async def test_nested_item_must_belong_to_parent(client: Client) -> None:
    await client.request("POST", "/services", {"name": "a", "host": "a.test"})
    await client.request("POST", "/services", {"name": "b", "host": "b.test"})
    _, _, route = await client.request("POST", "/services/a/routes", {"name": "ra", "paths": ["/"]})
    assert (await client.request("GET", "/services/a/routes/ra"))[0] == 200
    assert (await client.request("GET", "/services/b/routes/ra"))[0] == 404
    status, _, svc = await client.request("GET", f"/routes/{route['id']}/service")
    assert status == 200 and svc["name"] == "a"
    assert (await client.request("DELETE", "/routes/ra/service"))[2] == {"message": "Method not allowed"}


async def test_bad_ids_patch_and_delete(client: Client, export_of: Any) -> None:
    assert await _status(client, "GET", "/services/not-a-uuid-and-no-such-name") == 404
    missing = str(uuid.uuid4())
    status, _, body = await client.request("PATCH", f"/services/{missing}", {"host": "x.test"})
    assert status == 404
    assert body == {
        "code": 6,
        "name": "not found",
        "message": f"could not find the entity with primary key '{{id=\"{missing}\"}}'",
        "fields": {"id": missing},
    }
    status, _, body = await client.request("PATCH", "/services/nope", {"host": "x.test"})
    assert status == 404 and body["message"] == "could not find the entity with '{name=\"nope\"}'"
    assert await _status(client, "DELETE", f"/services/{missing}") == 204
    assert export_of(client)["services"] == []


async def _status(client: Client, method: str, target: str) -> int:
    return (await client.request(method, target))[0]


async def test_url_escaped_keys(client: Client) -> None:
    status, _, _ = await client.request("POST", "/consumers", {"username": "al*ce b"})
    assert status == 201
    status, _, body = await client.request("GET", "/consumers/al%2Ace%20b")
    assert status == 200 and body["username"] == "al*ce b"


async def test_rejected_write_leaves_store_unchanged(client: Client, export_of: Any) -> None:
    await client.request("POST", "/services", {"name": "keep", "host": "a.test"})
    before = export_of(client)
    status, _, body = await client.request("POST", "/services", {"name": "bad", "host": "a.test", "port": 70000})
    assert status == 400 and body["name"] == "schema violation"
    status, _, body = await client.request("POST", "/services", b"{oops", "application/json")
    assert (status, body) == (400, {"message": "Cannot parse JSON body"})
    status, _, _ = await client.request("POST", "/services", b"host=x", "text/plain")
    assert status == 415
    assert export_of(client) == before


async def test_form_body_goes_through_the_coercer(client: Client) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []

    def coerce(entity: str, data: dict[str, Any]) -> dict[str, Any]:
        seen.append((entity, data))
        return {**data, "port": int(data["port"])}

    client.app.coerce = coerce
    status, _, body = await client.request(
        "POST", "/services", b"name=f&host=a.test&port=8080&tags[]=t1&tags[]=t2", "application/x-www-form-urlencoded"
    )
    assert seen[0] == ("services", {"name": "f", "host": "a.test", "port": "8080", "tags": ["t1", "t2"]})
    assert (status, body["port"], body["tags"]) == (201, 8080, ["t1", "t2"])


async def test_schema_validate_endpoint(client: Client) -> None:
    status, _, body = await client.request("POST", "/schemas/services/validate", {"host": "a.test"})
    assert (status, body) == (200, {"message": "schema validation successful"})
    status, _, body = await client.request("POST", "/schemas/services/validate", {"port": 1})
    assert status == 400 and body["fields"] == {"host": "required field missing"}
    status, _, body = await client.request("POST", "/schemas/nothing/validate", {})
    assert (status, body) == (404, {"message": "No entity named 'nothing'"})


async def test_root_and_status(client: Client) -> None:
    status, _, body = await client.request("GET", "/")
    assert status == 200 and body["tagline"] == "Welcome to kong"
    assert body["configuration"]["database"] == "sqlite"
    status, _, body = await client.request("GET", "/status")
    assert status == 200 and body["database"] == {"reachable": True}
    assert body["server"]["total_requests"] == 1


async def test_disabled_endpoints(client: Client) -> None:
    assert await _status(client, "GET", "/targets") == 404
    assert await _status(client, "GET", "/snis/x.test/certificate") == 404


async def test_access_log_line(client: Client, tmp_path: Any) -> None:
    await client.app.handle("GET", "/services?size=1", [("User-Agent", "t/1")], b"", "127.0.0.1")
    client.app.access_log.flush()
    line = (tmp_path / "admin_access.log").read_text().splitlines()[-1]
    assert line.startswith("127.0.0.1 - - [")
    assert line.endswith('"GET /services?size=1 HTTP/1.1" 200 23 "-" "t/1"')


class TestDbless:
    async def test_writes_are_405_with_kongs_message(self, dbless_client: Client) -> None:
        status, _, body = await dbless_client.request("POST", "/routes", {"paths": ["/"]})
        assert status == 405
        assert body == {
            "code": 12,
            "name": "operation unsupported",
            "message": "cannot create 'routes' entities when not using a database",
        }
        status, _, body = await dbless_client.request("PUT", f"/routes/{uuid.uuid4()}", {"paths": ["/"]})
        assert body["message"] == "cannot create or update 'routes' entities when not using a database"
        status, _, body = await dbless_client.request("PATCH", "/services/foo", {"host": "a"})
        assert body["message"] == "cannot update 'services' entities by 'name' when not using a database"
        status, _, body = await dbless_client.request("DELETE", f"/services/{uuid.uuid4()}")
        assert (status, body["message"]) == (405, "cannot remove 'services' entities when not using a database")
        status, _, body = await dbless_client.request("PUT", "/routes", {})
        assert (status, body) == (405, {"message": "Method not allowed"})

    async def test_post_config_replaces_and_get_config_dumps(self, dbless_client: Client, export_of: Any) -> None:
        config = {"_format_version": "3.0", "services": [{"name": "s", "host": "a.test"}]}
        status, _, body = await dbless_client.request("POST", "/config", config)
        assert status == 201 and [row["name"] for row in body["services"].values()] == ["s"]
        status, _, body = await dbless_client.request("GET", "/config")
        assert status == 200 and "name: s" in body["config"]
        yaml_text = '_format_version: "3.0"\nconsumers:\n- username: bob\n'
        status, _, _ = await dbless_client.request("POST", "/config", yaml_text, "application/yaml")
        assert status == 201
        assert [c["username"] for c in export_of(dbless_client)["consumers"]] == ["bob"]
        assert export_of(dbless_client)["services"] == []
        status, _, _ = await dbless_client.request("POST", "/config?check_hash=1", yaml_text, "text/yaml")
        assert status == 304

    async def test_invalid_config_changes_nothing(self, dbless_client: Client, export_of: Any) -> None:
        await dbless_client.request("POST", "/config", {"config": '_format_version: "3.0"\nconsumers: [{username: a}]'})
        before = export_of(dbless_client)
        status, _, body = await dbless_client.request("POST", "/config", {"config": "bobby tables"})
        assert status == 400
        assert body == {
            "code": 14,
            "name": "invalid declarative configuration",
            "message": 'declarative config is invalid: {error="failed parsing declarative configuration: '
            'expected an object"}',
            "fields": {"error": "failed parsing declarative configuration: expected an object"},
        }
        status, _, body = await dbless_client.request("POST", "/config", {"_format_version": "9", "services": []})
        assert status == 400 and body["code"] == 14
        status, _, body = await dbless_client.request("POST", "/config")
        assert (status, body) == (400, {"message": "expected a declarative configuration"})
        assert export_of(dbless_client) == before

    async def test_config_needs_dbless(self, client: Client) -> None:
        status, _, body = await client.request("GET", "/config")
        assert status == 400
        assert body["message"] == "this endpoint is only available when Kong is configured to not use a database"

    async def test_status_has_hash_not_database(self, dbless_client: Client) -> None:
        status, _, body = await dbless_client.request("GET", "/status")
        assert status == 200 and "database" not in body
        assert body["configuration_hash"] == "0" * 32
