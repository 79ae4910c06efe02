"""The Status API's routes and Kong's ``/status/ready`` rule, without sockets."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.admin.status import EMPTY_CONFIG_HASH, Readiness, StatusApp, ready_state
from tests.unit.admin.conftest import Client, make_app


@pytest.mark.parametrize(
    ("facts", "answer"),
    [
        (Readiness(True, True, 2, 2, "abc", draining=True), (503, "draining")),
        (Readiness(False, False, 1, 1), (503, "failed to connect to database")),
        (
            Readiness(True, True, 0, 2, "abc"),
            (503, "router builds not yet complete, router ready in 0 of 2 workers"),
        ),
        (
            Readiness(True, True, 1, 2, "abc"),
            (503, "router builds not yet complete, router ready in 1 of 2 workers"),
        ),
        (
            Readiness(True, True, 2, 2, None),
            (503, "no configuration available (configuration hash is not initialized)"),
        ),
        (
            Readiness(True, True, 2, 2, EMPTY_CONFIG_HASH),
            (503, "no configuration available (empty configuration present)"),
        ),
        (Readiness(True, True, 2, 2, "abc"), (200, "ready")),
        (Readiness(True, False, 0, 2), (503, "router builds not yet complete")),
        (Readiness(True, False, 1, 2), (200, "ready")),  # Kong's database mode asks for one router build
    ],
)
def test_kongs_readiness_rule(facts: Readiness, answer: tuple[int, str]) -> None:
    assert ready_state(facts) == answer


def status_client(tmp_path: Any, database: str, ready: tuple[int, int], metrics: bool) -> Client:
    admin, _db = make_app(tmp_path, database)

    async def scrape() -> bytes:
        return b"# metrics\n"

    return Client(StatusApp(admin, lambda: ready, scrape if metrics else None))


async def test_the_status_api_serves_only_its_routes(tmp_path: Any) -> None:
    client = status_client(tmp_path, "sqlite", (1, 1), metrics=True)
    status, _, body = await client.request("GET", "/status")
    assert status == 200 and body["database"] == {"reachable": True} and "server" in body
    status, headers, body = await client.request("GET", "/metrics")
    assert (status, headers["content-type"], body) == (200, "text/plain; charset=UTF-8", b"# metrics\n")
    for path in ("/services", "/", "/config", "/status/dns"):
        status, _, body = await client.request("GET", path)
        assert (status, body) == (404, {"message": "Not found"}), path
    status, _, body = await client.request("DELETE", "/status")
    assert (status, body) == (405, {"message": "Method not allowed"})


async def test_without_the_prometheus_plugin_there_is_no_metrics_route(tmp_path: Any) -> None:
    client = status_client(tmp_path, "sqlite", (1, 1), metrics=False)
    status, _, body = await client.request("GET", "/metrics")
    assert (status, body) == (404, {"message": "Not found"})


async def test_ready_then_draining(tmp_path: Any) -> None:
    client = status_client(tmp_path, "sqlite", (1, 1), metrics=False)
    assert (await client.request("GET", "/status/ready"))[::2] == (200, {"message": "ready"})
    status, _, _ = await client.request("POST", "/status/ready", {"status": "up"})
    assert status == 400
    assert (await client.request("GET", "/status/ready"))[::2] == (200, {"message": "ready"})
    status, _, body = await client.request(
        "POST", "/status/ready", "status=draining", content_type="application/x-www-form-urlencoded"
    )
    assert (status, body) == (204, b"")
    assert (await client.request("GET", "/status/ready"))[::2] == (503, {"message": "draining"})


async def test_dbless_with_an_empty_configuration_is_not_ready(tmp_path: Any) -> None:
    client = status_client(tmp_path, "off", (2, 2), metrics=False)
    status, _, body = await client.request("GET", "/status/ready")
    assert (status, body) == (503, {"message": "no configuration available (empty configuration present)"})
    status, _, body = await client.request("GET", "/status")
    assert body["configuration_hash"] == EMPTY_CONFIG_HASH and "database" not in body
