"""psycopg 3 (synchronous) against asyncpg for the store's access pattern: many small queries in a row, each a
primary-key lookup or a one-row upsert, from the store's one worker thread (``Database.run``).

asyncpg is asyncio-only: from the worker thread, each query is a coroutine handed to an event loop that the thread
owns (``loop.run_until_complete``), which is how it would sit under the synchronous ``Backend`` interface. Both are
also timed inside their natural habitat (asyncpg awaited on a running loop) to show what the bridge costs.

Run once against a server: ``python -m benchmarks.pg_drivers "host=127.0.0.1 port=5432 user=kong password=..."``.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
import uuid

N = 3000


def _psycopg(dsn: str) -> dict[str, float]:
    import psycopg

    out: dict[str, float] = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench; CREATE TABLE bench (id TEXT PRIMARY KEY, row TEXT)")
        ids = [str(uuid.uuid4()) for _ in range(N)]
        t = time.perf_counter()
        for i in ids:
            conn.execute("INSERT INTO bench (id, row) VALUES (%s, %s) ON CONFLICT (id) DO UPDATE SET row = "
                         "EXCLUDED.row", (i, "{}"))  # fmt: skip
        out["upsert"] = (time.perf_counter() - t) / N * 1e6
        t = time.perf_counter()
        for i in ids:
            conn.execute("SELECT row FROM bench WHERE id = %s", (i,)).fetchone()
        out["select"] = (time.perf_counter() - t) / N * 1e6
    return out


async def _asyncpg_calls(dsn: str, bridge: asyncio.AbstractEventLoop | None) -> dict[str, float]:
    import asyncpg

    out: dict[str, float] = {}
    conn = await asyncpg.connect(dsn=_uri(dsn))
    await conn.execute("DROP TABLE IF EXISTS bench; CREATE TABLE bench (id TEXT PRIMARY KEY, row TEXT)")
    ids = [str(uuid.uuid4()) for _ in range(N)]
    t = time.perf_counter()
    for i in ids:
        await conn.execute("INSERT INTO bench (id, row) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET row = "
                           "EXCLUDED.row", i, "{}")  # fmt: skip
    out["upsert"] = (time.perf_counter() - t) / N * 1e6
    t = time.perf_counter()
    for i in ids:
        await conn.fetchrow("SELECT row FROM bench WHERE id = $1", i)
    out["select"] = (time.perf_counter() - t) / N * 1e6
    await conn.close()
    return out


def _asyncpg_bridged(dsn: str) -> dict[str, float]:
    """asyncpg under a synchronous interface: one ``run_until_complete`` per query, as the Backend would need."""
    import asyncpg

    loop = asyncio.new_event_loop()
    conn = loop.run_until_complete(asyncpg.connect(dsn=_uri(dsn)))
    ids = [str(uuid.uuid4()) for _ in range(N)]
    out: dict[str, float] = {}
    t = time.perf_counter()
    for i in ids:
        loop.run_until_complete(conn.execute("INSERT INTO bench (id, row) VALUES ($1, $2)", i, "{}"))
    out["upsert"] = (time.perf_counter() - t) / N * 1e6
    t = time.perf_counter()
    for i in ids:
        loop.run_until_complete(conn.fetchrow("SELECT row FROM bench WHERE id = $1", i))
    out["select"] = (time.perf_counter() - t) / N * 1e6
    loop.run_until_complete(conn.close())
    loop.close()
    return out


def _uri(dsn: str) -> str:
    parts = dict(p.split("=", 1) for p in dsn.split())
    return (f"postgresql://{parts['user']}:{parts['password']}@{parts['host']}:{parts['port']}/"
            f"{parts.get('dbname', 'postgres')}")  # fmt: skip


def main() -> None:
    dsn = sys.argv[1]
    rows = {
        "psycopg 3 (sync, from the store thread)": [_psycopg(dsn) for _ in range(3)],
        "asyncpg (awaited on a running loop)": [asyncio.run(_asyncpg_calls(dsn, None)) for _ in range(3)],
        "asyncpg (bridged: run_until_complete per query)": [_asyncpg_bridged(dsn) for _ in range(3)],
    }
    print(f"| driver, {N} queries each, median of 3 | upsert µs | select µs |\n|---|---|---|")
    for name, runs in rows.items():
        up = statistics.median(r["upsert"] for r in runs)
        sel = statistics.median(r["select"] for r in runs)
        print(f"| {name} | {up:.0f} | {sel:.0f} |")


if __name__ == "__main__":
    main()
