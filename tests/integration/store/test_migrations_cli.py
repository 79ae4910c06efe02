"""``gateway migrations`` (and ``kong migrations``) against a real PostgreSQL server and the SQLite file: Kong's
messages and exit codes, run as the console scripts a CI script calls."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import psycopg

from tests.fixtures.ports import closed_port
from tests.fixtures.postgres import PgServer

BIN = pathlib.Path(sys.executable).parent
NEEDS = "Database needs bootstrapping or is older than Kong 1.0."


def run(prog: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KONG_")}
    return subprocess.run(
        [str(BIN / prog), *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def tables(server: PgServer, database: str) -> set[str]:
    with psycopg.connect(server.admin_dsn(database)) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {name for (name,) in rows}


def test_kong_migrations_bootstrap_list_up_finish_reset(postgres: PgServer, tmp_path: pathlib.Path) -> None:
    env = {**postgres.env(postgres.create_database()), "KONG_PREFIX": str(tmp_path)}
    database = env["KONG_PG_DATABASE"]

    listed = run("kong", "migrations", "list", env=env)
    assert listed.returncode == 3, listed
    assert listed.stdout.startswith(NEEDS)
    assert "run 'kong migrations bootstrap'" in listed.stdout

    up = run("kong", "migrations", "up", env=env)
    assert up.returncode == 1
    assert up.stderr.startswith("Error: Cannot run migrations: " + NEEDS)

    boot = run("kong", "migrations", "bootstrap", env=env)
    assert boot.returncode == 0, boot.stderr
    assert boot.stdout.splitlines() == [
        "Bootstrapping database...",
        f"migrating core on database '{database}'...",
        "core migrated up to: 000_base (executed)",
        "core migrated up to: 001_acls (executed)",
        "2 migrations processed",
        "2 executed",
        "Database is up-to-date",
    ]
    assert {"schema_meta", "schema_migrations", "services", "routes", "certificates", "snis", "acls"} <= tables(
        postgres, database
    )

    again = run("kong", "migrations", "bootstrap", env=env)
    assert (again.returncode, again.stdout) == (0, "Database already bootstrapped\n")

    listed = run("kong", "migrations", "list", env=env)
    assert (listed.returncode, listed.stdout) == (0, "Executed migrations:\ncore: 000_base, 001_acls\n")
    assert run("kong", "migrations", "up", env=env).stdout == "Database is already up-to-date\n"
    assert run("kong", "migrations", "finish", env=env).stdout == "No pending migrations to finish\n"

    refused = run("kong", "migrations", "reset", env=env)
    assert refused.returncode == 1
    assert refused.stderr == "Error: not a tty: invoke 'reset' non-interactively with the --yes flag\n"
    assert "services" in tables(postgres, database), "a refused reset dropped something"

    reset = run("kong", "migrations", "reset", "--yes", env=env)
    assert (reset.returncode, reset.stdout) == (0, "Resetting database...\nDatabase successfully reset\n")
    assert tables(postgres, database) == set()
    nothing = run("kong", "migrations", "reset", "--yes", env=env)
    assert (nothing.returncode, nothing.stdout) == (1, "Database not bootstrapped, nothing to reset\n")
    assert run("kong", "migrations", "list", env=env).returncode == 3


def test_start_refuses_a_database_that_needs_bootstrap(postgres: PgServer, tmp_path: pathlib.Path) -> None:
    env = {**postgres.env(postgres.create_database()), "KONG_PREFIX": str(tmp_path)}
    env["KONG_PROXY_LISTEN"] = f"127.0.0.1:{closed_port()}"
    env["KONG_ADMIN_LISTEN"] = f"127.0.0.1:{closed_port()}"
    started = run("gateway", "start", env=env)
    assert started.returncode == 1
    assert started.stderr.startswith("Error: " + NEEDS)
    assert "run 'gateway migrations bootstrap'" in started.stderr
    assert not (tmp_path / "pids" / "gateway.pid").exists()


def test_two_nodes_bootstrapping_at_once_make_one_schema(postgres: PgServer, tmp_path: pathlib.Path) -> None:
    env = {**postgres.env(postgres.create_database(), pg_schema="kong_nodes"), "KONG_PREFIX": str(tmp_path)}
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: run("gateway", "migrations", "bootstrap", env=env), range(2)))
    assert [r.returncode for r in results] == [0, 0]
    outputs = sorted(r.stdout.splitlines()[-1] for r in results)
    assert outputs == ["Database already bootstrapped", "Database is up-to-date"]
    listed = run("gateway", "migrations", "list", env=env)
    assert (listed.returncode, listed.stdout) == (0, "Executed migrations:\ncore: 000_base, 001_acls\n")


def test_an_unreachable_database_is_one_error_line(tmp_path: pathlib.Path) -> None:
    port = closed_port()
    env = {
        "KONG_DATABASE": "postgres",
        "KONG_PG_PORT": str(port),
        "KONG_PG_TIMEOUT": "2000",
        "KONG_PREFIX": str(tmp_path),
    }
    listed = run("gateway", "migrations", "list", env=env)
    assert listed.returncode == 1
    assert listed.stderr.startswith(f"Error: database unreachable: postgres 127.0.0.1:{port}/kong: ")
    assert len(listed.stderr.strip().splitlines()) == 1 and "Traceback" not in listed.stderr


def test_pg_ssl_is_honoured_not_ignored(postgres: PgServer, tmp_path: pathlib.Path) -> None:
    """The test server has no TLS: ``pg_ssl = on`` (libpq's sslmode=require) must refuse to talk to it in clear."""
    env = {**postgres.env(postgres.create_database(), pg_ssl="on"), "KONG_PREFIX": str(tmp_path)}
    listed = run("gateway", "migrations", "list", env=env)
    assert listed.returncode == 1
    assert "server does not support SSL" in listed.stderr


def test_sqlite_migrations_work_on_the_prefix_file(tmp_path: pathlib.Path) -> None:
    env = {"KONG_PREFIX": str(tmp_path)}
    listed = run("gateway", "migrations", "list", env=env)
    assert (listed.returncode, listed.stdout.splitlines()[0]) == (3, NEEDS)
    boot = run("gateway", "migrations", "bootstrap", env=env)
    assert boot.returncode == 0 and boot.stdout.splitlines()[-1] == "Database is up-to-date"
    assert boot.stdout.splitlines()[1] == f"migrating core on database '{tmp_path / 'gateway.db'}'..."
    assert (tmp_path / "gateway.db").exists()
    assert run("gateway", "migrations", "bootstrap", env=env).stdout == "Database already bootstrapped\n"
    assert run("gateway", "migrations", "list", env=env).stdout == "Executed migrations:\ncore: 000_base, 001_acls\n"
    reset = run("gateway", "migrations", "reset", "-y", env=env)
    assert reset.returncode == 0 and not (tmp_path / "gateway.db").exists()


def test_db_import_into_postgres_then_every_node_reads_it(postgres: PgServer, tmp_path: pathlib.Path) -> None:
    kong_yml = pathlib.Path(__file__).parents[3] / "conf" / "kong.yml"
    env = {**postgres.env(postgres.create_database()), "KONG_PREFIX": str(tmp_path)}
    refused = run("gateway", "config", "db_import", str(kong_yml), env=env)
    assert refused.returncode == 1 and refused.stderr.startswith("Error: " + NEEDS)
    assert run("gateway", "migrations", "bootstrap", env=env).returncode == 0
    imported = run("gateway", "config", "db_import", str(kong_yml), env=env)
    assert (imported.returncode, imported.stdout) == (0, "parse successful\nimport successful\n"), imported.stderr
    with psycopg.connect(postgres.admin_dsn(env["KONG_PG_DATABASE"])) as conn:
        names = sorted(name for (name,) in conn.execute("SELECT u_name FROM services"))
        (version,) = conn.execute("SELECT value FROM schema_meta WHERE key = 'version'").fetchone() or ("0",)
    assert "example" in names and "echo-by-host" in names
    assert int(version) == 1  # one transaction
