"""The PostgreSQL backend's transactions: a write whose COMMIT did not succeed is never acknowledged, and writers on
two stores of one database are ordered, so the DAOs' unique checks hold across nodes."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from gateway.entities.errors import EntityError
from gateway.store import Database, StoreUnavailable, open_database
from gateway.store.pg_migrate import PgMigrations
from gateway.store.postgres import PgParams, PostgresBackend
from tests.fixtures.postgres import USER, PgServer


@pytest.fixture
def params(postgres: PgServer) -> PgParams:
    p = PgParams(host="127.0.0.1", port=postgres.port, user=USER, password=postgres.settings("x")["pg_password"],
                 database=postgres.create_database(), schema="x_" + uuid.uuid4().hex[:10])  # fmt: skip
    assert PgMigrations(p).bootstrap() is not None
    return p


@pytest.fixture
def two(params: PgParams) -> Iterator[tuple[Database, Database]]:
    a, b = open_database("postgres", params=params), open_database("postgres", params=params)
    yield a, b
    a.close()
    b.close()


def test_a_commit_that_fails_is_not_acknowledged(two: tuple[Database, Database], params: PgParams) -> None:
    a, b = two
    seen: list[int] = []
    a.subscribe(seen.append)
    version = a.version
    assert isinstance(a.backend, PostgresBackend)
    killed = "terminating connection due to administrator command"
    with pytest.raises(StoreUnavailable, match=killed), a.transaction():
        a.dao("services").insert({"name": "ghost", "url": "http://127.0.0.1:9"})
        # the connection dies with the transaction open (a server restart, a network cut), before COMMIT
        assert a.backend._conn is not None
        pid = a.backend._conn.info.backend_pid
        with psycopg.connect(**params.connect_kwargs(), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    assert a.version == version and seen == []
    assert a.dao("services").select("ghost") is None  # the next read reconnects by itself
    assert b.dao("services").select("ghost") is None
    a.dao("services").insert({"name": "real", "url": "http://127.0.0.1:9"})
    assert seen == [a.version] and a.version == version + 1


def test_two_stores_racing_on_one_name_keep_one_row(two: tuple[Database, Database]) -> None:
    a, b = two
    barrier = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def create(db: Database, who: str) -> None:
        barrier.wait(5)
        try:
            db.dao("services").insert({"name": "same", "url": "http://127.0.0.1:9"})
            outcomes[who] = "created"
        except EntityError as exc:
            outcomes[who] = exc.message

    for _ in range(10):
        threads = [threading.Thread(target=create, args=(db, who)) for db, who in ((a, "a"), (b, "b"))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert sorted(outcomes.values()) == ["UNIQUE violation detected on '{name=\"same\"}'", "created"]
        assert len([s for s in a.export()["services"] if s["name"] == "same"]) == 1
        assert a.dao("services").delete("same")
        outcomes.clear()
