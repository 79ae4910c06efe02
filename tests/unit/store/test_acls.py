"""The ``acls`` entity in the store: SQLite and memory, the migration that adds its table to an older store, cascades,
composite uniqueness, and kong.yml (nested under consumers and top level, Kong's deterministic ids, errors)."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import pytest

from gateway.entities.errors import DeclarativeConfigError, EntityError
from gateway.store import Database, open_database
from gateway.store.declarative import dump, generate_id, load
from gateway.store.sqlite import MIGRATIONS


def test_insert_select_cascade_and_uniqueness(db: Database) -> None:
    bob = db.dao("consumers").insert({"username": "bob"})
    acl = db.dao("acls").insert({"consumer": {"id": bob["id"]}, "group": "gold"})
    assert db.dao("acls").select(acl["id"]) == acl
    version = db.version
    with pytest.raises(EntityError) as info:
        db.dao("acls").insert({"consumer": {"id": bob["id"]}, "group": "gold"})
    assert (info.value.http_status, info.value.fields) == (409, {"consumer": {"id": bob["id"]}, "group": "gold"})
    assert db.version == version and len(db.export()["acls"]) == 1
    db.dao("consumers").delete("bob")
    assert db.export()["acls"] == []


def test_an_older_store_gets_the_acls_table_by_migration(tmp_path: Path) -> None:
    """A store written before acls existed (migration 1 only) opens, migrates, and keeps its rows."""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)"
    )
    MIGRATIONS[0].apply(conn)
    conn.execute("INSERT INTO schema_migrations VALUES (1, ?, 0)", (MIGRATIONS[0].name,))
    conn.commit()
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'acls'").fetchall() == []
    conn.close()
    db = open_database("sqlite", str(path))
    try:
        bob = db.dao("consumers").insert({"username": "bob"})
        db.dao("acls").insert({"consumer": {"id": bob["id"]}, "group": "gold"})
    finally:
        db.close()
    again = open_database("sqlite", str(path))
    try:
        assert [row["group"] for row in again.export()["acls"]] == ["gold"]
        versions = [v for (v,) in sqlite3.connect(path).execute("SELECT version FROM schema_migrations")]
        assert versions == [m.version for m in MIGRATIONS] == [1, 2]
    finally:
        again.close()


KONG_YML = {
    "_format_version": "3.0",
    "consumers": [
        {"username": "bob", "acls": [{"group": "gold"}, {"group": "silver", "tags": ["t"]}]},
        {"username": "alice"},
    ],
    "acls": [{"consumer": "alice", "group": "gold"}],
}


def test_kong_yml_nested_and_top_level_with_kongs_ids() -> None:
    rows = load(KONG_YML)
    bob = next(c for c in rows["consumers"] if c["username"] == "bob")
    alice = next(c for c in rows["consumers"] if c["username"] == "alice")
    by_group = {(row["consumer"]["id"], row["group"]): row for row in rows["acls"]}
    assert set(by_group) == {(bob["id"], "gold"), (bob["id"], "silver"), (alice["id"], "gold")}
    # Kong's build_cache_key: the nested item's parent id, or the reference as written at top level
    assert by_group[(bob["id"], "gold")]["id"] == generate_id("acls", f"acls:*:{bob['id']}:gold")
    assert by_group[(alice["id"], "gold")]["id"] == generate_id("acls", "acls:*:alice:gold")
    assert by_group[(bob["id"], "silver")]["tags"] == ["t"]
    assert [r["id"] for r in load(KONG_YML)["acls"]] == [r["id"] for r in rows["acls"]]  # the same on every load


def test_kong_yml_round_trips_through_the_store(db: Database) -> None:
    db.replace_all(KONG_YML)
    exported = db.export()
    assert len(exported["acls"]) == 3
    again = open_database("off")
    try:
        again.replace_all(dump(db))
        assert again.export()["acls"] == exported["acls"]
    finally:
        again.close()


@pytest.mark.parametrize(
    ("document", "lines"),
    [
        (
            {"_format_version": "3.0", "consumers": [{"username": "bob", "acls": [{"group": "a"}, {"group": "a"}]}]},
            [
                "consumers[0].acls[1]: uniqueness violation: 'acls' entity with primary key set to "
                f"'{generate_id('acls', 'acls:*:' + generate_id('consumers', 'bob') + ':a')}' already declared"
            ],
        ),
        (
            {
                "_format_version": "3.0",
                "consumers": [
                    {
                        "username": "bob",
                        "acls": [
                            {"id": "00000000-0000-4000-8000-000000000001", "group": "a"},
                            {"id": "00000000-0000-4000-8000-000000000002", "group": "a"},
                        ],
                    }
                ],
            },
            [
                "consumers[0].acls[1]: uniqueness violation: 'acls' entity with consumer set to "
                f"'{generate_id('consumers', 'bob')}' and group set to 'a' already declared"
            ],
        ),
        (
            {"_format_version": "3.0", "acls": [{"consumer": "nobody", "group": "a"}, {"group": "b"}]},
            [
                "acls[0]: invalid reference 'consumer: nobody' (no such entry in 'consumers')",
                "acls[1].consumer: required field missing",
            ],
        ),
        (
            {"_format_version": "3.0", "consumers": [{"username": "bob", "acls": [{"group": 5}, {}]}]},
            ["consumers[0].acls[0].group: expected a string", "consumers[0].acls[1].group: required field missing"],
        ),
    ],
)
def test_kong_yml_errors_and_nothing_is_swapped_in(db: Database, document: dict, lines: list[str]) -> None:
    db.replace_all({"_format_version": "3.0", "consumers": [{"username": "kept", "acls": [{"group": "k"}]}]})
    before = db.export()
    with pytest.raises(DeclarativeConfigError) as info:
        db.replace_all(document)
    assert info.value.paths == lines
    assert db.export() == before


def test_an_acl_id_given_twice_in_the_file_is_refused() -> None:
    same = str(uuid.uuid4())
    document = {"_format_version": "3.0", "consumers": [{"username": "bob", "acls": [{"id": same, "group": "a"}]}]}
    document["acls"] = [{"id": same, "consumer": "bob", "group": "b"}]
    with pytest.raises(DeclarativeConfigError) as info:
        load(document)
    assert info.value.paths == [
        f"acls[0]: uniqueness violation: 'acls' entity with primary key set to '{same}' already declared"
    ]
