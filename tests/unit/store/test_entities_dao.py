"""Services, routes, consumers, plugins, upstreams and targets through the DAOs."""

from __future__ import annotations

import uuid

import pytest

from gateway.entities.errors import NotFound


def test_service_client_certificate_foreign_key(db, pki, rejected) -> None:
    missing = str(uuid.uuid4())
    err = rejected(db.dao("services").insert, {"url": "https://up.test", "client_certificate": {"id": missing}})
    assert err.to_json() == {
        "code": 4,
        "name": "foreign key violation",
        "message": f"the foreign key '{{id=\"{missing}\"}}' does not reference an existing 'certificates' entity.",
        "fields": {"client_certificate": {"id": missing}},
    }
    cert = db.dao("certificates").insert(pki.pair())
    service = db.dao("services").insert({"url": "https://up.test", "client_certificate": {"id": cert["id"]}})
    assert db.dao("services").update(service["id"], {"client_certificate": None})["client_certificate"] is None


def test_service_tls_fields_rejected_for_http(db, rejected) -> None:
    service = db.dao("services").insert({"name": "plain", "url": "http://up.test"})
    err = rejected(db.dao("services").update, "plain", {"tls_verify": True})
    assert err.message == (
        "2 schema violations (failed conditional validation given value of field 'protocol'; "
        "tls_verify: value must be null)"
    )
    switched = db.dao("services").update(service["id"], {"url": "https://up.test:8443", "tls_verify_depth": 1})
    assert (switched["protocol"], switched["port"], switched["tls_verify_depth"]) == ("https", 8443, 1)


def test_names_are_unique_and_addressable(db, rejected) -> None:
    services = db.dao("services")
    s = services.insert({"name": "svc", "host": "a.test"})
    err = rejected(services.insert, {"name": "svc", "host": "b.test"})
    assert err.message == "UNIQUE violation detected on '{name=\"svc\"}'" and err.http_status == 409
    assert services.select("svc") == s and services.select(s["id"]) == s
    assert services.select("nope") is None
    put = services.upsert("created-by-put", {"host": "c.test"})
    assert put["name"] == "created-by-put" and services.select("created-by-put")["id"] == put["id"]
    replaced = services.upsert("svc", {"host": "d.test"})
    assert replaced["id"] == s["id"] and replaced["host"] == "d.test" and replaced["created_at"] == s["created_at"]
    with pytest.raises(NotFound):
        services.update("nope", {"host": "x.test"})
    assert services.delete("nope") is False


@pytest.mark.usefixtures("custom_plugins")
def test_service_delete_refused_while_routes_exist(db, rejected) -> None:
    service = db.dao("services").insert({"host": "a.test"})
    route = db.dao("routes").insert({"service": {"id": service["id"]}, "paths": ["/"]})
    db.dao("plugins").insert({"name": "custom", "service": {"id": service["id"]}})
    err = rejected(db.dao("services").delete, service["id"])
    assert err.to_json() == {
        "code": 4,
        "name": "foreign key violation",
        "message": "an existing 'routes' entity references this 'services' entity",
        "fields": {"@referenced_by": "routes"},
    }
    db.dao("routes").delete(route["id"])
    assert db.dao("services").delete(service["id"]) is True
    assert db.dao("plugins").page()[0] == []  # plugins cascade


def test_route_foreign_key_and_paths(db, rejected) -> None:
    err = rejected(db.dao("routes").insert, {"service": {"id": str(uuid.uuid4())}, "paths": ["/"]})
    assert err.code == 4
    err = rejected(db.dao("routes").insert, {"paths": ["/a", "b"], "name": "r"})
    assert err.message == "schema violation (paths.2: should start with: / (fixed path) or ~/ (regex path))"
    assert err.fields == {"paths": [None, "should start with: / (fixed path) or ~/ (regex path)"]}
    route = db.dao("routes").insert({"name": "r", "hosts": ["*.a.test"], "snis": ["a.test"], "protocols": ["https"]})
    err = rejected(db.dao("routes").update, "r", {"protocols": ["http"]})
    assert err.fields["snis"] == "length must be 0"
    assert db.dao("routes").update(route["id"], {"protocols": ["http"], "snis": None})["snis"] is None


@pytest.mark.usefixtures("custom_plugins")
def test_consumer_cascades(db, pki) -> None:
    consumer = db.dao("consumers").insert({"username": "bob"})
    db.dao("plugins").insert({"name": "custom", "consumer": {"id": consumer["id"]}})
    ca = db.dao("ca_certificates").insert({"cert": pki.root.cert_pem})
    cred = db.dao("mtls_auth_credentials").insert(
        {"consumer": {"id": consumer["id"]}, "subject_name": "bob", "ca_certificate": {"id": ca["id"]}}
    )
    assert db.dao("consumers").select("bob") == consumer
    assert db.dao("consumers").delete("bob") is True
    assert db.dao("plugins").page()[0] == [] and db.dao("mtls_auth_credentials").select(cred["id"]) is None


def test_consumer_custom_id_unique(db, rejected) -> None:
    db.dao("consumers").insert({"custom_id": "c1"})
    err = rejected(db.dao("consumers").insert, {"custom_id": "c1"})
    assert err.message == "UNIQUE violation detected on '{custom_id=\"c1\"}'"
    err = rejected(db.dao("consumers").insert, {})
    assert err.message == "schema violation (at least one of these fields must be non-empty: 'custom_id', 'username')"


@pytest.mark.usefixtures("custom_plugins")
def test_plugin_scope_uniqueness_and_protocols(db, rejected) -> None:
    route = db.dao("routes").insert({"protocols": ["http"], "paths": ["/"]})
    plugins = db.dao("plugins")
    p = plugins.insert({"name": "custom", "route": {"id": route["id"]}})
    assert p["enabled"] is True and p["service"] is None and p["protocols"] == ["grpc", "grpcs", "http", "https"]
    err = rejected(plugins.insert, {"name": "custom", "route": {"id": route["id"]}})
    assert err.message == (
        f'UNIQUE violation detected on \'{{consumer=null,name="custom",route={{id="{route["id"]}"}},service=null}}\''
    )
    assert err.fields == {"consumer": None, "name": "custom", "route": {"id": route["id"]}, "service": None}
    err = rejected(plugins.insert, {"name": "custom-b", "route": {"id": route["id"]}, "protocols": ["https"]})
    assert err.fields == {"protocols": "must match the associated route's protocols"}
    assert plugins.insert({"name": "custom"})["route"] is None  # the global one is another scope
    named = plugins.insert({"name": "custom-b", "instance_name": "my-x"})
    assert plugins.select("my-x") == named
    patched = plugins.update(named["id"], {"config": {"b": 2}})
    assert patched["config"] == {"a": None, "b": 2}


def test_plugin_config_patch_merges_known_config(db) -> None:
    ca = str(uuid.uuid4())
    p = db.dao("plugins").insert({"name": "mtls-auth", "config": {"ca_certificates": [ca]}})
    patched = db.dao("plugins").update(p["id"], {"config": {"skip_consumer_lookup": True}})
    assert patched["config"]["ca_certificates"] == [ca] and patched["config"]["skip_consumer_lookup"] is True


def test_upstreams_and_targets(db, pki, rejected) -> None:
    up = db.dao("upstreams").insert({"name": "backend", "healthchecks": {"active": {"https_sni": "b.test"}}})
    assert up["healthchecks"]["active"]["https_verify_certificate"] is True
    assert up["healthchecks"]["active"]["https_sni"] == "b.test"
    targets = db.dao("targets")
    t = targets.insert({"upstream": {"id": up["id"]}, "target": "10.0.0.1"})
    assert t["target"] == "10.0.0.1:8000" and t["weight"] == 100
    err = rejected(targets.insert, {"upstream": {"id": up["id"]}, "target": "10.0.0.1:8000"})
    assert err.http_status == 409
    err = rejected(targets.insert, {"upstream": {"id": up["id"]}, "target": "bad host"})
    assert err.fields == {"target": "Invalid target; not a valid hostname or ip address"}
    assert db.select_target("backend", "10.0.0.1") == t
    assert db.select_target(up["id"], t["id"]) == t
    assert db.select_target("backend", "10.0.0.2") is None and db.select_target("nope", t["id"]) is None
    cert = db.dao("certificates").insert(pki.pair())
    assert db.dao("upstreams").update("backend", {"client_certificate": {"id": cert["id"]}})["client_certificate"]
    db.dao("upstreams").update("backend", {"client_certificate": None})
    assert db.dao("upstreams").delete("backend") is True
    assert targets.select(t["id"]) is None
