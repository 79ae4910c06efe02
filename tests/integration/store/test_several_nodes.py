"""Several gateway processes on one PostgreSQL database: a write on any node is served by every node."""

from __future__ import annotations

import pathlib
import socket
import ssl
from concurrent.futures import ThreadPoolExecutor

import httpx
from cryptography import x509

from tests.fixtures.certs import make_cert
from tests.fixtures.postgres import PgServer
from tests.integration.store.nodes import eventually, gateway_nodes, upstream

PROPAGATION = 5.0  # db_update_frequency's default: the latest a write may reach another node


def served_cert(port: int, server_name: str) -> x509.Certificate:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname=server_name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def test_a_certificate_and_sni_made_on_one_node_are_served_by_the_other(
    postgres: PgServer, tmp_path: pathlib.Path
) -> None:
    issued = make_cert("node-a.test")
    with gateway_nodes(postgres, tmp_path) as (a, b):
        assert b.proxy_ssl_port is not None
        before = served_cert(b.proxy_ssl_port, "node-a.test")
        assert before.serial_number != issued.cert.serial_number
        res = httpx.post(
            f"{a.admin_url}/certificates",
            json={"cert": issued.chain_pem, "key": issued.key_pem, "snis": ["node-a.test"]},
            timeout=10,
        )
        assert res.status_code == 201, res.text
        took = eventually(
            lambda: served_cert(b.proxy_ssl_port or 0, "node-a.test").serial_number == issued.cert.serial_number,
            PROPAGATION,
            "node B serving node A's certificate",
        )
        assert took < PROPAGATION
        # node B's Admin API reads the same rows
        snis = httpx.get(f"{b.admin_url}/snis", timeout=10).json()["data"]
        assert [s["name"] for s in snis] == ["node-a.test"]


def test_tls_verify_flipped_on_one_node_changes_the_others_next_handshake(
    postgres: PgServer, tmp_path: pathlib.Path
) -> None:
    untrusted = make_cert("127.0.0.1", sans=["127.0.0.1"])
    with upstream(untrusted, tmp_path) as port, gateway_nodes(postgres, tmp_path) as (a, b):
        made = httpx.post(f"{a.admin_url}/services", json={"name": "s", "url": f"https://127.0.0.1:{port}"}, timeout=10)
        assert made.status_code == 201, made.text
        route = httpx.post(f"{a.admin_url}/services/s/routes", json={"paths": ["/s"]}, timeout=10)
        assert route.status_code == 201, route.text
        eventually(lambda: httpx.get(f"{b.proxy_url}/s", timeout=5).status_code == 200, PROPAGATION, "B proxies")
        assert httpx.get(f"{a.proxy_url}/s", timeout=5).status_code == 200  # not verified: the self-signed passes

        flipped = httpx.patch(f"{b.admin_url}/services/s", json={"tls_verify": True}, timeout=10)
        assert flipped.status_code == 200, flipped.text
        eventually(lambda: httpx.get(f"{a.proxy_url}/s", timeout=5).status_code == 502, PROPAGATION, "A verifies")
        assert "upstream SSL certificate verify error" in a.error_log.read_text()


def test_the_same_name_created_on_both_nodes_at_once_is_one_row(postgres: PgServer, tmp_path: pathlib.Path) -> None:
    with gateway_nodes(postgres, tmp_path) as (a, b):

        def create(args: tuple[str, str]) -> int:
            url, name = args
            res = httpx.post(f"{url}/services", json={"name": name, "url": "http://127.0.0.1:9"}, timeout=10)
            return res.status_code

        names = [f"race-{i}" for i in range(10)]
        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(create, [(url, n) for n in names for url in (a.admin_url, b.admin_url)]))
        for i in range(len(names)):
            assert sorted(statuses[2 * i : 2 * i + 2]) == [201, 409], (names[i], statuses[2 * i : 2 * i + 2])
        rows = httpx.get(f"{b.admin_url}/services?size=1000", timeout=10).json()["data"]
        assert sorted(r["name"] for r in rows) == sorted(names)
        conflict = httpx.post(f"{b.admin_url}/services", json={"name": "race-0", "url": "http://x"}, timeout=10)
        assert conflict.json()["message"] == "UNIQUE violation detected on '{name=\"race-0\"}'"


def target_health(url: str, upstream_name: str, target: str) -> str:
    rows = httpx.get(f"{url}/upstreams/{upstream_name}/health", timeout=5).json()["data"]
    return str(next(row["health"] for row in rows if row["target"] == target))


def test_health_forced_on_one_node_reaches_the_other(postgres: PgServer, tmp_path: pathlib.Path) -> None:
    passive = {"passive": {"unhealthy": {"tcp_failures": 1}}}
    with upstream() as port, gateway_nodes(postgres, tmp_path) as (a, b):
        target = f"127.0.0.1:{port}"
        for path, body in (
            ("/upstreams", {"name": "up.test", "healthchecks": passive}),
            ("/upstreams/up.test/targets", {"target": target}),
            ("/services", {"name": "lb", "host": "up.test"}),
            ("/services/lb/routes", {"paths": ["/lb"]}),
        ):
            assert httpx.post(f"{a.admin_url}{path}", json=body, timeout=10).status_code == 201
        eventually(lambda: httpx.get(f"{b.proxy_url}/lb", timeout=5).status_code == 200, PROPAGATION, "B balances")

        forced = httpx.put(f"{a.admin_url}/upstreams/up.test/targets/{target}/unhealthy", timeout=10)
        assert forced.status_code == 204, forced.text
        eventually(lambda: target_health(b.admin_url, "up.test", target) == "UNHEALTHY", PROPAGATION, "B unhealthy")
        res = httpx.get(f"{b.proxy_url}/lb", timeout=5)
        assert (res.status_code, res.json()["message"]) == (503, "failure to get a peer from the ring-balancer")

        assert httpx.post(f"{b.admin_url}/upstreams/up.test/targets/{target}/healthy", timeout=10).status_code == 204
        eventually(lambda: target_health(a.admin_url, "up.test", target) == "HEALTHY", PROPAGATION, "A healthy")
        assert httpx.get(f"{a.proxy_url}/lb", timeout=5).status_code == 200
