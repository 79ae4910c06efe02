"""The change watcher alone: LISTEN/NOTIFY brings another node's commit at once, polling every
``db_update_frequency`` finds a change whose notification never came, and its own node's commits are not news."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from gateway.store import Database, open_database
from gateway.store.pg_migrate import PgMigrations
from gateway.store.pg_watch import ChangeWatcher
from gateway.store.postgres import PgParams
from tests.fixtures.postgres import USER, PgServer


@pytest.fixture
def params(postgres: PgServer) -> PgParams:
    schema = "w_" + uuid.uuid4().hex[:10]
    p = PgParams(host="127.0.0.1", port=postgres.port, user=USER, password=postgres.settings("x")["pg_password"],
                 database=postgres.create_database(), schema=schema)  # fmt: skip
    assert PgMigrations(p).bootstrap() is not None
    return p


class Seen:
    def __init__(self) -> None:
        self.versions: list[int] = []
        self.event = threading.Event()

    def __call__(self, version: int) -> None:
        self.versions.append(version)
        self.event.set()


@pytest.fixture
def nodes(params: PgParams) -> Iterator[tuple[Database, Database]]:
    a, b = open_database("postgres", params=params), open_database("postgres", params=params)
    yield a, b
    a.close()
    b.close()


def watch(db: Database, params: PgParams, every: float) -> Seen:
    seen = Seen()
    db.subscribe(seen)
    db.watcher = ChangeWatcher(params, db.observe, every)
    db.watcher.start()
    assert db.watcher.listening.wait(5)
    return seen


def test_a_commit_on_another_node_arrives_by_notification(nodes: tuple[Database, Database], params: PgParams) -> None:
    a, b = nodes
    seen = watch(b, params, every=60)  # polling far away: only a notification can be this fast
    started = time.monotonic()
    a.dao("services").insert({"name": "one", "url": "http://127.0.0.1:9"})
    assert seen.event.wait(5)
    assert time.monotonic() - started < 5
    assert seen.versions == [a.version] and b.version == a.version
    assert b.watcher is not None and b.watcher.notified >= 1
    assert [s["name"] for s in b.export()["services"]] == ["one"]


def test_a_change_without_notification_is_found_by_polling(nodes: tuple[Database, Database], params: PgParams) -> None:
    a, b = nodes
    seen = watch(b, params, every=1)
    with psycopg.connect(**params.connect_kwargs()) as conn:  # a version moved on, and no NOTIFY
        conn.execute(f'UPDATE "{params.schema}".schema_meta SET value = %s WHERE key = %s', ("41", "version"))
    assert seen.event.wait(5)
    assert seen.versions == [41] and b.version == 41
    # the next local write numbers itself after the database's version, not after its own stale one
    a.dao("services").insert({"name": "two", "url": "http://127.0.0.1:9"})
    assert a.version == 42


def test_the_nodes_own_commit_is_not_news(nodes: tuple[Database, Database], params: PgParams) -> None:
    a, _ = nodes
    seen = watch(a, params, every=60)
    a.dao("services").insert({"name": "mine", "url": "http://127.0.0.1:9"})
    assert seen.versions == [a.version]  # once, from the commit itself
    assert a.watcher is not None
    deadline = time.monotonic() + 5
    while a.watcher.notified == 0 and time.monotonic() < deadline:
        time.sleep(0.01)  # until the watcher has heard its own notification
    assert a.watcher.notified == 1 and seen.versions == [a.version]
