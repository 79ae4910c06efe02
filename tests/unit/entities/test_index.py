"""``gateway.entities.index``: one index of an export, and the one place foreign references are unwrapped."""

from __future__ import annotations

from typing import Any

from gateway.entities.index import ConfigIndex, foreign_id, index_of

EXPORT: dict[str, list[dict[str, Any]]] = {
    "services": [{"id": "s1", "name": "one"}, {"id": "s2", "name": "two"}],
    "routes": [
        {"id": "r1", "service": {"id": "s1"}},
        {"id": "r2", "service": None},
        {"id": "r3", "service": {"id": "s1"}},
        {"id": "r4", "service": "s2"},
    ],
    "consumers": [{"id": "c1", "username": "alice", "custom_id": None}, {"id": "c2", "username": "bob"}],
}


def test_foreign_references_in_every_shape() -> None:
    assert foreign_id({"id": "a"}) == "a"
    assert foreign_id("a") == "a"
    assert foreign_id(None) is None
    assert foreign_id({}) is None
    assert foreign_id({"id": None}) is None


def test_rows_by_id_by_field_and_by_parent_in_export_order() -> None:
    index = ConfigIndex(EXPORT)
    assert list(index.by_id("services")) == ["s1", "s2"]
    assert index.by_field("consumers", "username")["bob"]["id"] == "c2"
    assert "custom_id" not in index.by_field("consumers", "custom_id")
    children = index.children("routes", "service")
    assert [r["id"] for r in children["s1"]] == ["r1", "r3"]
    assert [r["id"] for r in children["s2"]] == ["r4"]
    assert index.rows("targets") == ()


def test_each_index_is_built_once_and_the_index_is_the_export() -> None:
    index = ConfigIndex(EXPORT)
    assert index.by_id("routes") is index.by_id("routes")
    assert index.children("routes", "service") is index.children("routes", "service")
    assert dict(index) == EXPORT
    assert index.get("routes") is EXPORT["routes"]
    assert index_of(index) is index
    assert isinstance(index_of(EXPORT), ConfigIndex)
