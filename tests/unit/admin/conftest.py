"""An ``AdminApp`` over the fake store, called without sockets."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from gateway.admin.app import AdminApp
from gateway.observability.accesslog import AccessLog
from gateway.observability.errorlog import ErrorLog
from gateway.settings import load_settings
from tests.unit.admin.fake_db import FakeDatabase

STATUS = {
    "connections_accepted": 1,
    "connections_active": 1,
    "connections_handled": 1,
    "connections_reading": 0,
    "connections_writing": 1,
    "connections_waiting": 0,
    "total_requests": 1,
}


class Client:
    """Calls ``AdminApp.handle`` and decodes JSON answers."""

    def __init__(self, app: AdminApp) -> None:
        self.app = app

    async def request(
        self,
        method: str,
        target: str,
        body: bytes | str | dict[str, Any] | None = None,
        content_type: str | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> tuple[int, dict[str, str], Any]:
        hdrs = list(headers or [])
        raw = b""
        if isinstance(body, dict):
            raw = json.dumps(body).encode()
            content_type = content_type or "application/json"
        elif isinstance(body, str):
            raw = body.encode()
        elif isinstance(body, bytes):
            raw = body
        if content_type is not None:
            hdrs.append(("Content-Type", content_type))
        if raw or method in ("POST", "PUT", "PATCH"):
            hdrs.append(("Content-Length", str(len(raw))))
        status, out_headers, out = await self.app.handle(method, target, hdrs, raw)
        names = {k.lower(): v for k, v in out_headers}
        decoded: Any = out
        if names.get("content-type", "").startswith("application/json") and out:
            try:
                decoded = json.loads(out)
            except ValueError:
                decoded = out
        return status, names, decoded


def make_app(tmp_path: Any, database: str) -> tuple[AdminApp, FakeDatabase]:
    settings = load_settings(env={}, overrides={"prefix": str(tmp_path), "database": database})
    db = FakeDatabase()
    app = AdminApp(
        db,
        settings,
        ErrorLog(str(tmp_path / "error.log")),
        AccessLog(str(tmp_path / "admin_access.log"), with_request_id=False),
        lambda: dict(STATUS),
    )
    return app, db


@pytest.fixture
async def client(tmp_path: Any) -> AsyncIterator[Client]:
    app, db = make_app(tmp_path, "sqlite")
    yield Client(app)
    db.close()


@pytest.fixture
async def dbless_client(tmp_path: Any) -> AsyncIterator[Client]:
    app, db = make_app(tmp_path, "off")
    yield Client(app)
    db.close()


@pytest.fixture
def export_of() -> Callable[[Client], dict[str, Any]]:
    def export(c: Client) -> dict[str, Any]:
        return c.app.db.export()

    return export
