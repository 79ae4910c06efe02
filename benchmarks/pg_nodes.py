"""Two measures of the PostgreSQL store (issue 18), run once; ``benchmarks/POSTGRES.md`` keeps the table.

1. Propagation: two gateway processes on one database; 100 times, a route is created on node A's Admin API (which
   answers once the route is live on A), then node B's proxy is polled (one keepalive connection, back to back)
   until the new path answers 200. Reported: from A's answer to B serving, median and p99.
2. Snapshot build: 10,000 services, 10,000 routes and 1,000 certificates (EC, one SNI each) in a store, then the
   runtime's work for one new configuration: ``Database.export()`` (every row) and the snapshot build
   (``runtime.building.build``); median of 3, on PostgreSQL (same machine, loopback) and on SQLite.

The PostgreSQL server is the tests' throw-away cluster (``tests/fixtures/postgres.py``: ``initdb`` + ``pg_ctl`` on a
free loopback port), so the script needs Debian's ``postgresql`` package and nothing running.

    python -m benchmarks.pg_nodes [--writes 100] [--services 10000] [--certificates 1000] [--output FILE]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from gateway.observability.errorlog import ErrorLog
from gateway.runtime.building import build
from gateway.settings import load_settings
from gateway.store import Database, open_database
from gateway.store.pg_migrate import PgMigrations
from gateway.store.postgres import PgParams
from tests.fixtures.certs import make_cert
from tests.fixtures.postgres import PgServer, start_server
from tests.integration.store.nodes import gateway_nodes, upstream


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def propagation(server: PgServer, writes: int) -> list[float]:
    """Seconds from node A's 201 to node B's proxy serving the new route, one per write."""
    out: list[float] = []
    with tempfile.TemporaryDirectory() as tmp, upstream() as port, gateway_nodes(server, Path(tmp)) as (a, b):
        admin = httpx.Client(base_url=a.admin_url, timeout=10)
        proxy = httpx.Client(base_url=b.proxy_url, timeout=10)
        assert admin.post("/services", json={"name": "s", "url": f"http://127.0.0.1:{port}"}).status_code == 201
        for i in range(writes):
            made = admin.post("/services/s/routes", json={"paths": [f"/p{i}"]})
            acknowledged = time.perf_counter()
            assert made.status_code == 201, made.text
            while proxy.get(f"/p{i}").status_code != 200:
                if time.perf_counter() - acknowledged > 10:
                    raise RuntimeError(f"write {i} not served by node B within 10 s")
            out.append(time.perf_counter() - acknowledged)
        admin.close()
        proxy.close()
    return out


def fill(db: Database, services: int, certificates: int) -> None:
    certs = [make_cert(f"c{i}.bench.test", key_type="ec") for i in range(certificates)]
    with db.transaction():
        for i, issued in enumerate(certs):
            db.dao("certificates").insert(
                {"cert": issued.chain_pem, "key": issued.key_pem, "snis": [f"c{i}.bench.test"]}
            )
        for i in range(services):
            svc = db.dao("services").insert({"name": f"svc{i}", "url": f"http://127.0.0.1:{10000 + i % 50000}"})
            db.dao("routes").insert({"service": {"id": svc["id"]}, "paths": [f"/r{i}"], "hosts": [f"h{i}.test"]})


def build_times(db: Database, prefix: str, runs: int = 3) -> tuple[float, float]:
    """Median seconds of ``export()`` and of the snapshot build over ``runs``."""
    # one process serving traffic: the whole snapshot (a master with workers would build only its balancers)
    settings = load_settings(env={}, overrides={"prefix": prefix, "worker_processes": "1"})
    log = ErrorLog(None, "notice")
    exports, builds = [], []
    for _ in range(runs):
        started = time.perf_counter()
        config = db.export()
        exported = time.perf_counter()
        build(config, settings, None, None, log)  # the runtime's own builder, as after an Admin API write
        exports.append(exported - started)
        builds.append(time.perf_counter() - exported)
    return statistics.median(exports), statistics.median(builds)


def snapshot_rows(server: PgServer, services: int, certificates: int) -> dict[str, tuple[float, float, float]]:
    rows: dict[str, tuple[float, float, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = open_database("sqlite", str(Path(tmp) / "gateway.db"))
        params = PgParams(host="127.0.0.1", port=server.port, user="kong", password=server.settings("x")["pg_password"],
                          database=server.create_database(), schema="bench_" + uuid.uuid4().hex[:8])  # fmt: skip
        assert PgMigrations(params).bootstrap() is not None
        pg = open_database("postgres", params=params)
        for name, db in (("SQLite", sqlite), ("PostgreSQL", pg)):
            started = time.perf_counter()
            fill(db, services, certificates)
            filled = time.perf_counter() - started
            export, built = build_times(db, tmp)
            rows[name] = (filled, export, built)
            db.close()
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writes", type=int, default=100)
    parser.add_argument("--services", type=int, default=10000)
    parser.add_argument("--certificates", type=int, default=1000)
    parser.add_argument("--output", help="also write the tables to this Markdown file")
    args = parser.parse_args(argv)
    server = start_server()
    try:
        took = propagation(server, args.writes)
        rows = snapshot_rows(server, args.services, args.certificates)
    finally:
        server.close()
    ms = [t * 1000 for t in took]
    lines = [
        f"Propagation of a write to the other node ({len(ms)} writes: node A's 201 -> node B's proxy serves it)",
        "",
        "| median ms | p99 ms | max ms |",
        "|---|---|---|",
        f"| {statistics.median(ms):.1f} | {_percentile(ms, 99):.1f} | {max(ms):.1f} |",
        "",
        f"Snapshot build, {args.services} services + {args.services} routes + {args.certificates} certificates "
        "(median of 3; fill = one transaction of DAO inserts)",
        "",
        "| store | fill s | export s | build s | export + build s |",
        "|---|---|---|---|---|",
    ]
    for name, (filled, export, built) in rows.items():
        lines.append(f"| {name} | {filled:.1f} | {export:.2f} | {built:.2f} | {export + built:.2f} |")
    text = "\n".join(lines)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n")


if __name__ == "__main__":
    main()
