"""An Admin API on a real socket (127.0.0.1, a free port) over the real store, and its certificates."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from gateway.admin.server import AdminApp, start_admin_server
from gateway.observability.accesslog import AccessLog
from gateway.observability.errorlog import ErrorLog
from gateway.settings import Listener, Settings, load_settings
from gateway.store import open_database
from gateway.store.pg_migrate import PgMigrations
from gateway.store.postgres import PgParams
from tests.fixtures.certs import Issued, days, make_ca, make_cert
from tests.fixtures.postgres import PgServer


class Admin:
    """An httpx client bound to the running server, plus the store for before/after comparisons."""

    def __init__(self, http: httpx.AsyncClient, db: Any, url: str, app: AdminApp) -> None:
        self.http = http
        self.db = db
        self.url = url
        self.app = app
        self.port = int(url.rsplit(":", 1)[1])

    def export(self) -> dict[str, Any]:
        return self.db.export()

    def error_log(self) -> str:
        return Path(self.app.error_log.path or "").read_text()

    def access_log(self) -> str:
        """The Admin API's access log so far."""
        self.app.access_log.flush()
        return Path(self.app.access_log.path or "").read_text()

    def access_lines(self) -> list[str]:
        return self.access_log().splitlines()


def _open(tmp_path: Any, database: str, settings: Settings) -> Any:
    if database == "postgres":
        params = PgParams.from_settings(settings)
        assert PgMigrations(params).bootstrap() is not None
        return open_database("postgres", params=params)
    return open_database(database, str(tmp_path / "gateway.db") if database == "sqlite" else None)


async def _start(
    tmp_path: Any, database: str, pg: dict[str, str] | None = None, **overrides: str
) -> AsyncIterator[Admin]:
    """``overrides`` are settings (``client_body_timeout="1s"``, ``log_level="info"``...); ``pg`` the ``pg_*``
    settings of a PostgreSQL database (with a ``pg_schema`` of the test's own)."""
    settings = load_settings(
        env={}, overrides={"prefix": str(tmp_path), **(pg or {}), "database": database, **overrides}
    )
    db = _open(tmp_path, database, settings)
    app = AdminApp(
        db,
        settings,
        ErrorLog(str(tmp_path / "error.log"), settings.log_level),
        AccessLog(str(tmp_path / "admin_access.log"), with_request_id=False),
        lambda: {"connections_accepted": 0, "total_requests": 0},
    )
    server = await start_admin_server(app, Listener("127.0.0.1", 0))
    port = server.sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        yield Admin(http, db, url, app)
    server.close()
    await server.wait_closed()
    app.access_log.close()
    app.error_log.close()
    db.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def admin(request: pytest.FixtureRequest, tmp_path: Any) -> AsyncIterator[Admin]:
    """The Admin API over each backend that stores a configuration: the embedded SQLite file, and PostgreSQL (one
    server for the session, one database for the conformance tests, one schema per test, dropped after it)."""
    if request.param == "sqlite":
        async for a in _start(tmp_path, "sqlite"):
            yield a
        return
    server: PgServer = request.getfixturevalue("postgres")
    database = request.getfixturevalue("conformance_pg_database")
    schema = "t_" + uuid.uuid4().hex[:12]
    try:
        async for a in _start(tmp_path, "postgres", server.settings(database, pg_schema=schema)):
            yield a
    finally:
        with psycopg.connect(server.admin_dsn(database), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'.encode())


@pytest.fixture(scope="session")
def conformance_pg_database(postgres: PgServer) -> str:
    return postgres.create_database()


@pytest.fixture
async def dbless_admin(tmp_path: Any) -> AsyncIterator[Admin]:
    async for a in _start(tmp_path, "off"):
        yield a


@pytest.fixture(scope="session")
def pki() -> dict[str, Issued]:
    root = make_ca("Test Root CA")
    return {
        "rsa": make_cert("ssl-example.test"),
        "rsa2": make_cert("other.test"),
        "ecdsa": make_cert("ssl-example.test", key_type="ec"),
        "ecdsa2": make_cert("other-ec.test", key_type="ec"),
        "root": root,
        "intermediate": make_ca("Test Intermediate CA", issuer=root),
        "leaf": make_cert("leaf.test", issuer=root),
        "expired_ca": make_ca("Expired CA", not_before=days(-30), not_after=days(-1)),
    }
