"""The SQLite file removed or replaced under a running store: writes are refused, nothing is half-written, reads go
on from the open file, and a reopened store holds exactly the writes that were acknowledged."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gateway.store import Database, StoreUnavailable, open_database


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "gateway.db"


@pytest.fixture
def store(path: Path) -> Iterator[Database]:
    db = open_database("sqlite", str(path))
    yield db
    db.close()


def _copy_of(path: Path, to: Path) -> None:
    """A consistent copy of a live WAL database (its committed pages may still be in ``-wal``)."""
    source, target = sqlite3.connect(path), sqlite3.connect(to)
    with target:
        source.backup(target)
    source.close()
    target.close()


def _refused(store: Database, write: Callable[[], object], match: str) -> StoreUnavailable:
    before, version = store.export(), store.version
    with pytest.raises(StoreUnavailable, match=match) as info:
        write()
    assert store.export() == before, "a refused write changed what the store serves"
    assert store.version == version
    return info.value


def test_a_removed_database_file_refuses_writes_and_keeps_serving_reads(store: Database, path: Path) -> None:
    service = store.dao("services").insert({"name": "a", "host": "a.test"})
    path.unlink()
    error = _refused(store, lambda: store.dao("services").insert({"name": "b", "host": "b.test"}), "was removed")
    assert str(error).startswith(f"database file {path} was removed while in use: writes are refused")
    # every kind of write goes through the same commit
    _refused(store, lambda: store.dao("services").update("a", {"retries": 1}), "was removed")
    _refused(store, lambda: store.dao("services").delete("a"), "was removed")
    _refused(store, lambda: store.replace_all({"_format_version": "3.0"}), "was removed")
    assert store.dao("services").select("a") == service


def test_a_replaced_database_file_refuses_writes_and_acknowledged_ones_survive(
    store: Database, path: Path, tmp_path: Path
) -> None:
    store.dao("services").insert({"name": "a", "host": "a.test"})
    _copy_of(path, tmp_path / "copy.db")
    os.replace(tmp_path / "copy.db", path)
    error = _refused(store, lambda: store.dao("services").insert({"name": "b", "host": "b.test"}), "replaced")
    assert "replaced by another file" in str(error)
    store.close()
    reopened = open_database("sqlite", str(path))
    try:
        assert [row["name"] for row in reopened.dao("services").page()[0]] == ["a"]
    finally:
        reopened.close()


def test_a_removed_write_ahead_log_refuses_writes(store: Database, path: Path) -> None:
    """Committed pages live in -wal until a checkpoint: losing it loses them, so it is guarded as the file is."""
    store.dao("services").insert({"name": "a", "host": "a.test"})
    Path(f"{path}-wal").unlink()
    error = _refused(store, lambda: store.dao("services").insert({"name": "b", "host": "b.test"}), "removed")
    assert str(error).startswith(f"write-ahead log {path}-wal was removed")


def test_writes_go_on_while_the_files_stay_the_same(store: Database, path: Path) -> None:
    """The checks do not fire for the store's own activity: many commits, and the checkpoints they trigger (SQLite
    rewinds ``-wal`` after a checkpoint but keeps the file)."""
    wal = Path(f"{path}-wal")
    for i in range(300):
        store.dao("consumers").insert({"username": f"u{i}", "custom_id": f"{i}-" + "x" * 20000})
    assert wal.stat().st_size < 300 * 20000, "no checkpoint happened"
    os.utime(path)  # touching the file changes nothing: it is still the same file
    store.dao("consumers").insert({"username": "last"})
    assert store.version == 301
