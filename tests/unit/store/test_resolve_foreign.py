"""Kong's ``resolve_foreign``: foreign keys given by a unique field (``service.name=...``) resolve to ids."""

from __future__ import annotations

import pytest

from gateway.entities.errors import EntityError
from gateway.store import Database


def test_foreign_key_by_endpoint_key_resolves_to_the_id(db: Database) -> None:
    service = db.dao("services").insert({"name": "svc", "host": "upstream.test"})
    route = db.dao("routes").insert({"paths": ["/x"], "service": {"name": "svc"}})
    assert route["service"] == {"id": service["id"]}
    patched = db.dao("routes").update(route["id"], {"service": {"name": "svc"}, "paths": ["/y"]})
    assert patched["service"] == {"id": service["id"]} and patched["paths"] == ["/y"]


def test_unresolvable_foreign_key_is_code_13_and_changes_nothing(db: Database) -> None:
    before = db.export()
    with pytest.raises(EntityError) as caught:
        db.dao("routes").insert({"paths": ["/x"], "service": {"name": "absent"}})
    assert caught.value.http_status == 400
    assert caught.value.to_json() == {
        "code": 13,
        "name": "foreign keys unresolved",
        "message": "foreign key unresolved (service.name: the foreign key cannot be resolved with "
        "'{name=\"absent\"}' for an existing 'services' entity)",
        "fields": {
            "service": {
                "name": "the foreign key cannot be resolved with '{name=\"absent\"}' for an existing 'services' entity"
            }
        },
    }
    assert db.export() == before


def test_valid_primary_key_is_left_to_the_foreign_key_check(db: Database) -> None:
    with pytest.raises(EntityError) as caught:
        db.dao("routes").insert({"paths": ["/x"], "service": {"id": "6c0dc8b8-0b8b-4bd2-bb3c-1d8d1e5b8a4e"}})
    assert caught.value.code == 4


def test_authentication_plugins_refuse_a_consumer_scope(db: Database) -> None:
    """Kong's ``typedefs.no_consumer`` on mtls-auth: ``consumer: value must be null``, nothing stored."""
    consumer = db.dao("consumers").insert({"username": "alice"})
    ca_id = "6c0dc8b8-0b8b-4bd2-bb3c-1d8d1e5b8a4e"
    before = db.export()
    with pytest.raises(EntityError) as caught:
        db.dao("plugins").insert(
            {"name": "mtls-auth", "consumer": {"id": consumer["id"]}, "config": {"ca_certificates": [ca_id]}}
        )
    assert caught.value.message == "schema violation (consumer: value must be null)"
    assert db.export() == before
