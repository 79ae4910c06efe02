"""Declarative configuration: nesting, references, generated ids, collected errors, atomic swap, dump."""

from __future__ import annotations

import uuid

import pytest

from gateway.entities.errors import DeclarativeConfigError
from gateway.store.declarative import dump, generate_id, load

# ``custom`` (tests/unit/store/conftest.py) stands for a plugin this gateway runs that a consumer can scope
pytestmark = pytest.mark.usefixtures("custom_plugins")

CA_ID = "5b2c0000-0000-4000-8000-000000000001"
CERT_ID = "0b0f0000-0000-4000-8000-000000000001"


def config(pki) -> dict:
    return {
        "_format_version": "3.0",
        "certificates": [{"id": CERT_ID, **pki.pair(), "snis": [{"name": "example.com"}, {"name": "*.example.com"}]}],
        "ca_certificates": [{"id": CA_ID, "cert": pki.root.cert_pem}],
        "services": [
            {
                "name": "backend",
                "url": "https://backend.internal:8443/",
                "client_certificate": CERT_ID,
                "tls_verify": True,
                "tls_verify_depth": 2,
                "ca_certificates": [CA_ID],
                "routes": [
                    {
                        "name": "api",
                        "protocols": ["https"],
                        "hosts": ["api.example.com"],
                        "snis": ["api.example.com"],
                        "paths": ["/"],
                        "plugins": [{"name": "custom", "config": {"a": 1}}],
                    }
                ],
                "plugins": [{"name": "mtls-auth", "config": {"ca_certificates": [CA_ID]}}],
            }
        ],
        "snis": [{"name": "other.example.com", "certificate": CERT_ID}],
        "consumers": [
            {
                "username": "foo@example.com",
                "mtls_auth_credentials": [
                    {"id": "bda09448-3b10-4da7-a83b-2a8ba6021f0c", "subject_name": "foo@example.com"}
                ],
            }
        ],
        "upstreams": [{"name": "backend.internal", "targets": [{"target": "10.0.0.1"}, {"target": "10.0.0.2:81"}]}],
        "plugins": [{"name": "custom", "consumer": "foo@example.com", "service": "backend"}],
    }


def test_load_nested_and_references(pki) -> None:
    rows = load(config(pki))
    service = rows["services"][0]
    assert service["id"] == generate_id("services", "backend")
    assert (service["protocol"], service["port"], service["client_certificate"]) == ("https", 8443, {"id": CERT_ID})
    route = rows["routes"][0]
    assert route["service"] == {"id": service["id"]} and route["id"] == generate_id("routes", "api")
    by_name = {p["name"]: p for p in rows["plugins"] if p["route"] is None and p["consumer"] is None}
    assert by_name["mtls-auth"]["service"] == {"id": service["id"]}
    assert by_name["mtls-auth"]["id"] == generate_id("plugins", f"plugins:*:mtls-auth::{service['id']}:")
    scoped = next(p for p in rows["plugins"] if p["consumer"] is not None)
    consumer = rows["consumers"][0]
    assert scoped["consumer"] == {"id": consumer["id"]} and scoped["service"] == {"id": service["id"]}
    assert sorted(s["name"] for s in rows["snis"]) == ["*.example.com", "example.com", "other.example.com"]
    assert all(s["certificate"] == {"id": CERT_ID} for s in rows["snis"])
    assert [t["target"] for t in rows["targets"]] == ["10.0.0.1:8000", "10.0.0.2:81"]
    assert rows["mtls_auth_credentials"][0]["consumer"] == {"id": consumer["id"]}
    assert rows["ca_certificates"][0]["cert_digest"]
    assert "snis" not in rows["certificates"][0]


def test_generated_ids_are_stable(pki) -> None:
    first, second = load(config(pki)), load(config(pki))
    assert first["services"][0]["id"] == second["services"][0]["id"]
    assert first["targets"][0]["id"] == second["targets"][0]["id"]


@pytest.mark.parametrize("version", ["1.1", "2.1", "3.0"])
def test_format_versions(version: str) -> None:
    assert load({"_format_version": version}) == load({"_format_version": "3.0"})


def test_bad_format_version_and_unknown_keys() -> None:
    with pytest.raises(DeclarativeConfigError) as info:
        load({"_format_version": "4.0", "servicez": []})
    assert info.value.fields == {"_format_version": "expected one of: 1.1, 2.1, 3.0", "servicez": "unknown field"}
    assert info.value.code == 14 and info.value.name == "invalid declarative configuration"
    with pytest.raises(DeclarativeConfigError) as info:
        load({})
    assert info.value.message == 'declarative config is invalid: {_format_version="required field missing"}'


def test_all_errors_are_collected_with_paths(pki) -> None:
    cfg = {
        "_format_version": "3.0",
        "services": [
            {"name": "ok", "url": "http://a.test"},
            {"name": "bad", "url": "http://b.test", "tls_verify": True, "routes": [{"paths": ["/"]}, {"paths": ["x"]}]},
        ],
        "routes": [{"name": "r", "service": "nope", "paths": ["/"]}],
        "consumers": [{"username": "dup"}, {"username": "dup"}],
    }
    with pytest.raises(DeclarativeConfigError) as info:
        load(cfg)
    err = info.value
    assert err.paths == [
        "consumers[1]: uniqueness violation: 'consumers' entity with username set to 'dup' already declared",
        "routes[0]: invalid reference 'service: nope' (no such entry in 'services')",
        "services[1]: failed conditional validation given value of field 'protocol'",
        "services[1].routes[1].paths[0]: should start with: / (fixed path) or ~/ (regex path)",
        "services[1].tls_verify: value must be null",
    ]
    assert err.fields is not None
    assert err.fields["services"][0] is None
    assert err.fields["services"][1]["routes"] == [
        None,
        {"paths": ["should start with: / (fixed path) or ~/ (regex path)"]},
    ]
    assert err.message.startswith("declarative config is invalid: {consumers={[2]={")
    flat = {(e["entity_type"], e["entity_name"]) for e in err.flattened_errors}
    assert ("service", "bad") in flat and ("route", "r") in flat and ("consumer", None) in flat
    route_err = next(e for e in err.flattened_errors if e["entity_type"] == "route" and e["entity_name"] is None)
    assert route_err["errors"] == [
        {"type": "field", "field": "paths.1", "message": "should start with: / (fixed path) or ~/ (regex path)"}
    ]
    assert err.to_json(flatten=True)["flattened_errors"] == err.flattened_errors


NOT_ENABLED = (
    "plugin '{}' not enabled; add it to the 'plugins' configuration property "
    "(this gateway runs only acl, custom, custom-b, mtls-auth, prometheus, tls-metadata-headers)"
)


def test_plugins_this_gateway_does_not_run_are_refused_wherever_they_are_declared(pki) -> None:
    cfg = config(pki)
    cfg["plugins"].append({"name": "key-auth", "config": {"key_names": ["apikey"]}})
    cfg["services"][0]["routes"][0]["plugins"].append({"name": "rate-limiting", "config": {"minute": 5}})
    cfg["consumers"][0]["plugins"] = [{"name": "key-auth"}]
    with pytest.raises(DeclarativeConfigError) as info:
        load(cfg)
    err = info.value
    assert err.paths == [
        f"consumers[0].plugins[0].name: {NOT_ENABLED.format('key-auth')}",
        f"plugins[1].name: {NOT_ENABLED.format('key-auth')}",
        f"services[0].routes[0].plugins[1].name: {NOT_ENABLED.format('rate-limiting')}",
    ]
    assert err.fields is not None
    assert err.fields["plugins"] == [None, {"name": NOT_ENABLED.format("key-auth")}]
    flat = {e["entity_name"]: e["errors"] for e in err.flattened_errors}
    assert flat["key-auth"] == [{"type": "field", "field": "name", "message": NOT_ENABLED.format("key-auth")}]


def test_nested_snis_must_be_objects(pki) -> None:
    with pytest.raises(DeclarativeConfigError) as info:
        load({"_format_version": "3.0", "certificates": [{**pki.pair(), "snis": ["a.test"]}]})
    assert info.value.paths == ["certificates[0].snis[0]: expected a record"]


def test_duplicate_unique_values_across_entities(pki) -> None:
    with pytest.raises(DeclarativeConfigError) as info:
        load({"_format_version": "3.0", "ca_certificates": [{"cert": pki.root.cert_pem}, {"cert": pki.root.cert_pem}]})
    assert "with cert_digest set to" in info.value.paths[0] and info.value.paths[0].startswith("ca_certificates[1]")


def test_replace_all_is_atomic(db, pki) -> None:
    db.dao("consumers").insert({"username": "old"})
    before, version = db.export(), db.version
    bad = config(pki)
    bad["routes"] = [{"service": "missing", "paths": ["/"]}]
    with pytest.raises(DeclarativeConfigError):
        db.replace_all(bad)
    assert db.export() == before and db.version == version
    db.replace_all(config(pki))
    assert db.version == version + 1
    assert db.dao("consumers").select("old") is None
    assert db.dao("certificates").select("example.com")["snis"] == ["*.example.com", "example.com", "other.example.com"]
    assert db.dao("services").select("backend")["tls_verify_depth"] == 2


def test_dump_round_trips(db, pki) -> None:
    db.replace_all(config(pki))
    dumped = dump(db)
    assert dumped["_format_version"] == "3.0"
    assert dumped["routes"][0]["service"] == db.dao("services").select("backend")["id"]
    assert "snis" not in dumped["certificates"][0]
    assert all(v is not None for row in dumped["services"] for v in row.values())
    before = db.export()
    db.replace_all(dumped)

    def strip(export: dict) -> dict:
        return {e: [{k: v for k, v in r.items() if k != "updated_at"} for r in rows] for e, rows in export.items()}

    assert strip(db.export()) == strip(before)


def test_random_ids_for_unnamed_entities(pki) -> None:
    rows = load({"_format_version": "3.0", "certificates": [pki.pair()], "routes": [{"paths": ["/"]}]})
    assert uuid.UUID(rows["certificates"][0]["id"]).version == 4
    assert uuid.UUID(rows["routes"][0]["id"]).version == 4


def test_grpc_services_load_from_kong_yml() -> None:
    route = {"protocols": ["grpcs"], "paths": ["/"]}
    cfg = {
        "_format_version": "3.0",
        "services": [
            {"name": "g", "url": "grpcs://g.test:50051", "tls_verify": True, "routes": [route]},
            {"name": "h", "protocol": "grpc", "host": "h.test"},
        ],
    }
    rows = {row["name"]: row for row in load(cfg)["services"]}
    assert (rows["g"]["protocol"], rows["g"]["port"], rows["g"]["tls_verify"]) == ("grpcs", 50051, True)
    assert (rows["h"]["protocol"], rows["h"]["port"]) == ("grpc", 80)
    bad = {"_format_version": "3.0", "services": [{"name": "p", "url": "grpc://g.test", "tls_verify": True}]}
    with pytest.raises(DeclarativeConfigError) as info:
        load(bad)
    assert 'tls_verify="value must be null"' in str(info.value)
