"""The store Protocol (``gateway.store.interface.Store``) is what the store objects are, not a wish.

Each test reaches the store only through a ``Store``-typed name, so mypy (which checks ``tests/``) proves the SQLite
and the memory ``Database`` satisfy the Protocol, and the calls prove each member does what its docstring says.
"""

from __future__ import annotations

import asyncio
import threading

from gateway.store import Database
from gateway.store.interface import EntityDAO, Store


def _contract(store: Store) -> tuple[int, list[int]]:
    """Write through a DAO of the Protocol, read back every way the Protocol offers; (version, notified)."""
    notified: list[int] = []
    store.subscribe(notified.append)
    before = store.version
    upstreams: EntityDAO = store.dao("upstreams")
    upstream = upstreams.insert({"name": "u"})
    target = store.dao("targets").insert({"upstream": {"id": upstream["id"]}, "target": "10.0.0.1"})
    assert store.version == before + 2 and notified == [before + 1, before + 2]
    assert upstreams.select("u") == upstream
    assert upstreams.page(10, None, None) == ([upstream], None)
    assert upstreams.all() == [upstream]
    assert store.select_target("u", "10.0.0.1:8000") == target
    assert store.export()["targets"] == [target]
    assert upstreams.update("u", {"slots": 100})["slots"] == 100
    assert upstreams.upsert("u", {"slots": 200})["id"] == upstream["id"]
    assert store.dao("targets").delete(str(target["id"])) is True
    return store.version, notified


def test_the_sqlite_and_memory_stores_satisfy_the_protocol(db: Database) -> None:
    store: Store = db
    version, notified = _contract(store)
    assert notified[-1] == version
    store.replace_all({"_format_version": "3.0", "services": [{"name": "s", "host": "example.test"}]})
    assert [row["name"] for row in store.export()["services"]] == ["s"]
    assert store.export()["upstreams"] == []
    assert store.version == version + 1


async def test_run_is_the_protocols_way_onto_the_store_thread(db: Database) -> None:
    store: Store = db
    name = await store.run(lambda: threading.current_thread().name)
    assert name != threading.current_thread().name
    row = await store.run(store.dao("consumers").insert, {"username": "c"})
    assert await asyncio.wait_for(store.run(store.dao("consumers").select, "c"), 5) == row
