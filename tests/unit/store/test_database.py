"""Transactions, versions, subscribers, the worker thread, pagination, and SQLite specifics."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from gateway.entities.errors import EntityError
from gateway.store import open_database
from gateway.store.pagination import encode_offset
from gateway.store.sqlite import MIGRATIONS


def test_versions_and_subscribers(db) -> None:
    seen: list[tuple[int, str]] = []
    db.subscribe(lambda v: seen.append((v, threading.current_thread().name)))
    start = db.version
    db.dao("consumers").insert({"username": "a"})
    db.dao("consumers").update("a", {"custom_id": "x"})
    with pytest.raises(EntityError):
        db.dao("consumers").insert({"username": "a"})
    assert db.version == start + 2
    assert [v for v, _ in seen] == [start + 1, start + 2]


def test_cascade_failure_rolls_back_everything(db, pki, rejected) -> None:
    """A certificate delete removes its SNIs first; a later refusal must bring them back."""
    cert = db.dao("certificates").insert({**pki.pair(), "snis": ["keep.test"]})
    db.dao("upstreams").insert({"name": "u", "client_certificate": {"id": cert["id"]}})
    err = rejected(db.dao("certificates").delete, cert["id"])
    assert err.message == "an existing 'upstreams' entity references this 'certificates' entity"
    assert db.dao("snis").select("keep.test") is not None


def test_certificate_insert_failing_on_sni_rows_leaves_nothing(db, pki, rejected) -> None:
    err = rejected(db.dao("certificates").insert, {**pki.pair(), "snis": ["ok.test", "bad..name"]})
    assert err.fields == {"snis": [None, "invalid value: bad..name"]}


async def test_run_uses_one_worker_thread(db) -> None:
    names = await asyncio.gather(*(db.run(lambda: threading.current_thread().name) for _ in range(5)))
    assert len(set(names)) == 1 and names[0] != threading.current_thread().name
    row = await db.run(db.dao("consumers").insert, {"username": "async"})
    assert db.dao("consumers").select("async") == row
    with pytest.raises(EntityError):
        await db.run(db.dao("consumers").insert, {"username": "async"})


def test_pagination(db) -> None:
    dao = db.dao("consumers")
    ids = sorted(
        dao.insert({"username": f"u{i}", "tags": ["even" if i % 2 == 0 else "odd", "all"]})["id"] for i in range(7)
    )
    assert dao.page() == (dao.page(size=1000)[0], None)
    seen: list[str] = []
    offset = None
    pages = 0
    while True:
        rows, offset = dao.page(size=3, offset=offset)
        seen += [r["id"] for r in rows]
        pages += 1
        if offset is None:
            break
    assert seen == ids and pages == 3
    rows, nxt = dao.page(size=7)
    assert len(rows) == 7 and nxt is None
    evens, _ = dao.page(filters={"tags": ["even", "all"]})
    assert len(evens) == 4
    either, _ = dao.page(filters={"tags": ["even", "odd"], "tags_mode": "or"})
    assert len(either) == 7
    page1, off = dao.page(size=2, filters={"tags": ["odd"]})
    page2, off2 = dao.page(size=2, offset=off, filters={"tags": ["odd"]})
    assert len(page1) == 2 and len(page2) == 1 and off2 is None
    assert dao.page(offset=encode_offset(ids[-1])) == ([], None)


@pytest.mark.parametrize(
    ("kwargs", "code", "message"),
    [
        ({"size": 0}, 9, "size must be an integer between 1 and 1000"),
        ({"size": 1001}, 9, "size must be an integer between 1 and 1000"),
        ({"size": "10"}, 9, "size must be a number"),
        ({"offset": "!!!"}, 7, "'!!!' is not a valid offset: bad base64 encoding"),
        ({"offset": "bm90IGpzb24"}, 7, "'bm90IGpzb24' is not a valid offset: bad json encoding"),
    ],
)
def test_pagination_errors(db, kwargs, code, message) -> None:
    with pytest.raises(EntityError) as info:
        db.dao("services").page(**kwargs)
    assert (info.value.code, info.value.message, info.value.http_status) == (code, message, 400)


def test_export_lists_every_entity(db, pki) -> None:
    cert = db.dao("certificates").insert({**pki.pair(), "snis": ["e.test"]})
    exported = db.export()
    assert list(exported)[:3] == ["certificates", "ca_certificates", "snis"]
    assert exported["certificates"][0]["snis"] == ["e.test"] and exported["certificates"][0]["id"] == cert["id"]
    assert exported["snis"][0]["certificate"] == {"id": cert["id"]}


def test_sqlite_persists_across_reopen(tmp_path: Path, pki) -> None:
    path = str(tmp_path / "g.db")
    db = open_database("sqlite", path)
    cert = db.dao("certificates").insert({**pki.pair(), "snis": ["p.test"]})
    db.dao("services").insert({"name": "s", "url": "https://up.test", "client_certificate": {"id": cert["id"]}})
    version, exported = db.version, db.export()
    db.close()
    again = open_database("sqlite", path)
    try:
        assert again.export() == exported and again.version == version
        reloaded = again.dao("certificates").select("p.test")
        assert reloaded is not None and reloaded["id"] == cert["id"]
        again.dao("services").delete("s")
        assert again.version == version + 1
    finally:
        again.close()


def test_sqlite_migrations_and_layout(tmp_path: Path) -> None:
    path = str(tmp_path / "m.db")
    db = open_database("sqlite", path)
    db.close()
    conn = sqlite3.connect(path)
    try:
        applied = conn.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()
        assert applied == [(m.version, m.name) for m in MIGRATIONS]
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        columns = {r[1] for r in conn.execute("PRAGMA table_info(snis)")}
        assert {"id", "row", "u_name", "fk_certificate"} <= columns
        plugin_cols = {r[1] for r in conn.execute("PRAGMA table_info(plugins)")}
        assert "cache_key" in plugin_cols and "u_instance_name" in plugin_cols
    finally:
        conn.close()
    reopened = open_database("sqlite", path)  # nothing to apply twice
    assert reopened.backend.migrate() == []  # type: ignore[attr-defined]
    reopened.close()


def test_open_database_rejects_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown database kind"):
        open_database("cassandra", None)
    with pytest.raises(ValueError, match="needs a database file"):
        open_database("sqlite", None)
