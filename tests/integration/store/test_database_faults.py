"""The database stopped under two running nodes, then started again: the proxy never stops, writes fail loudly and
are never half-made, and the nodes catch up by themselves. A server of the test's own (the session's is shared)."""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.fixtures.gateway_process import GatewayProcess
from tests.fixtures.postgres import PgServer, start_server
from tests.integration.store.nodes import eventually, gateway_nodes, upstream

PROPAGATION = 5.0


@pytest.fixture
def own_postgres() -> Iterator[PgServer]:
    server = start_server()
    try:
        yield server
    finally:
        server.close()


def status(url: str) -> int:
    return httpx.get(url, timeout=5).status_code


def logged(node: GatewayProcess, text: str) -> Callable[[], bool]:
    return lambda: text in node.error_log.read_text()


def serves(node: GatewayProcess, path: str) -> Callable[[], bool]:
    return lambda: status(f"{node.proxy_url}{path}") == 200


def test_database_down_then_back(own_postgres: PgServer, tmp_path: pathlib.Path) -> None:
    with upstream() as port, gateway_nodes(own_postgres, tmp_path) as (a, b):
        assert (
            httpx.post(f"{a.admin_url}/services", json={"name": "s", "url": f"http://127.0.0.1:{port}"}).status_code
            == 201
        )
        assert httpx.post(f"{a.admin_url}/services/s/routes", json={"paths": ["/s"]}).status_code == 201
        eventually(lambda: status(f"{b.proxy_url}/s") == 200, PROPAGATION, "B proxies /s")

        own_postgres.stop()
        for node in (a, b):
            assert status(f"{node.proxy_url}/s") == 200, "the proxy stopped serving its last configuration"
            write = httpx.post(f"{node.admin_url}/services", json={"name": "lost", "url": "http://127.0.0.1:9"})
            assert (write.status_code, write.json()) == (500, {"message": "An unexpected error occurred"})
            read = httpx.get(f"{node.admin_url}/services")
            assert (read.status_code, read.json()) == (500, {"message": "An unexpected error occurred"})
            assert httpx.get(f"{node.admin_url}/status").json()["database"] == {"reachable": False}
            log = node.error_log.read_text()
            assert "[crit]" in log and "[store] database unreachable: postgres 127.0.0.1:" in log
            lost = "[store] lost the database, serving the last configuration"
            eventually(logged(node, lost), PROPAGATION, "the watcher saying the database is lost")
        assert status(f"{a.proxy_url}/s") == 200 and status(f"{b.proxy_url}/s") == 200

        own_postgres.start()
        made = httpx.post(f"{b.admin_url}/services/s/routes", json={"paths": ["/t"]})
        assert made.status_code == 201, made.text  # the first write after the restart: a new connection
        for node in (a, b):
            eventually(serves(node, "/t"), PROPAGATION, "both nodes serve /t")
            assert httpx.get(f"{node.admin_url}/status").json()["database"] == {"reachable": True}
            names = [s["name"] for s in httpx.get(f"{node.admin_url}/services").json()["data"]]
            assert names == ["s"], "a write refused while the database was down was kept"
            eventually(logged(node, "reachable again, catching up"), PROPAGATION, "reconnected")
