"""The test PostgreSQL server itself: it accepts password logins on loopback and databases can be created."""

from __future__ import annotations

import psycopg

from tests.fixtures.postgres import PgServer


def test_server_accepts_a_password_login_on_loopback(postgres: PgServer) -> None:
    name = postgres.create_database()
    with psycopg.connect(postgres.admin_dsn(name)) as conn:
        (version,) = conn.execute("SHOW server_version_num").fetchone() or (0,)
        (db,) = conn.execute("SELECT current_database()").fetchone() or ("",)
    assert int(version) >= 120000
    assert db == name


def test_a_wrong_password_is_refused(postgres: PgServer) -> None:
    dsn = postgres.admin_dsn().replace("kong-test-password", "wrong")
    try:
        psycopg.connect(dsn).close()
    except psycopg.OperationalError as exc:
        assert "password authentication failed" in str(exc)
    else:
        raise AssertionError("a wrong password was accepted")
