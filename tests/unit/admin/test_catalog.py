"""The Admin API's catalog (``gateway/admin/catalog.py``) agrees with the entity schemas it serves.

The catalog is kept apart from the schemas so that the Admin API does not depend on how the entity layer declares
them; this test is what keeps the two from drifting: same entities, same endpoint keys, same foreign keys in the
schemas' field order (Kong generates the nested endpoints in that order).
"""

from __future__ import annotations

from gateway.admin.catalog import CATALOG, by_admin_name
from gateway.entities import SCHEMAS

#: where the catalog differs from the schema on purpose, and why
ENDPOINT_KEY_EXCEPTIONS = {
    # a target is found under its upstream by ``host:port`` (``Database.select_target``), never by ``/targets/{key}``
    "targets": ("target", None),
}


def test_same_entities() -> None:
    names = [spec.name for spec in CATALOG]
    assert sorted(names) == sorted(SCHEMAS) and len(set(names)) == len(names)


def test_same_endpoint_keys() -> None:
    for spec in CATALOG:
        schema_key = SCHEMAS[spec.name].endpoint_key
        expected = ENDPOINT_KEY_EXCEPTIONS.get(spec.name, (schema_key, schema_key))
        assert (schema_key, spec.endpoint_key) == expected, spec.name


def test_same_foreign_keys_in_field_order() -> None:
    for spec in CATALOG:
        schema = SCHEMAS[spec.name]
        assert list(spec.foreign.items()) == [(name, f.reference) for name, f in schema.foreign_fields], spec.name
        assert all(target in SCHEMAS for target in spec.foreign.values())


def test_schema_names_resolve() -> None:
    for name in SCHEMAS:
        found = by_admin_name(name)
        assert found is not None and found.name == name
