"""The ``pg_*`` settings as the driver receives them: each one reaches libpq, none is read and dropped."""

from __future__ import annotations

import pytest

from gateway.settings import ConfigError, load_settings
from gateway.store.backend import StoreUnavailable
from gateway.store.postgres import PgParams


def params(**env: str) -> PgParams:
    return PgParams.from_settings(load_settings(env={"KONG_DATABASE": "postgres", **env}))


def test_kongs_defaults() -> None:
    kwargs = params().connect_kwargs()
    assert kwargs == {
        "host": "127.0.0.1",
        "port": 5432,
        "user": "kong",
        "dbname": "kong",
        "connect_timeout": 5,
        "application_name": "gateway",
        "options": "-c statement_timeout=5000",
        "sslmode": "disable",
    }


def test_every_kong_variable_reaches_the_driver() -> None:
    p = params(
        KONG_PG_HOST="db.internal",
        KONG_PG_PORT="6432",
        KONG_PG_USER="gw",
        KONG_PG_PASSWORD="s3cret",
        KONG_PG_DATABASE="edge",
        KONG_PG_SCHEMA="gateway",
        KONG_PG_TIMEOUT="2500",
        KONG_PG_SSL="on",
    )
    kwargs = p.connect_kwargs()
    assert (kwargs["host"], kwargs["port"], kwargs["user"], kwargs["password"], kwargs["dbname"]) == (
        "db.internal",
        6432,
        "gw",
        "s3cret",
        "edge",
    )
    assert kwargs["connect_timeout"] == 3 and kwargs["options"] == "-c statement_timeout=2500"
    assert kwargs["sslmode"] == "require" and "sslrootcert" not in kwargs
    assert p.schema == "gateway" and p.describe() == "db.internal:6432/edge (schema gateway)"


def test_ssl_verify_uses_lua_ssl_trusted_certificate() -> None:
    kwargs = params(KONG_PG_SSL="on", KONG_PG_SSL_VERIFY="on").connect_kwargs()
    assert (kwargs["sslmode"], kwargs["sslrootcert"]) == ("verify-full", "system")
    kwargs = params(
        KONG_PG_SSL="on", KONG_PG_SSL_VERIFY="on", KONG_LUA_SSL_TRUSTED_CERTIFICATE="/etc/ca.pem"
    ).connect_kwargs()
    assert kwargs["sslrootcert"] == "/etc/ca.pem"
    with pytest.raises(StoreUnavailable, match="exactly one lua_ssl_trusted_certificate entry"):
        params(
            KONG_PG_SSL="on", KONG_PG_SSL_VERIFY="on", KONG_LUA_SSL_TRUSTED_CERTIFICATE="/a.pem,/b.pem"
        ).connect_kwargs()


def test_a_read_replica_is_refused_not_ignored() -> None:
    with pytest.raises(ConfigError, match=r"^pg_ro_host = replica is not supported: there is no read-only connection"):
        load_settings(env={"KONG_DATABASE": "postgres", "KONG_PG_RO_HOST": "replica"})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"KONG_PG_PORT": "0"}, "pg_port must be at least 1"),
        ({"KONG_PG_TIMEOUT": "soon"}, "pg_timeout is not a valid integer"),
        ({"KONG_PG_SSL": "maybe"}, "pg_ssl has an invalid value"),
        ({"KONG_DB_UPDATE_FREQUENCY": "0"}, "db_update_frequency must be at least 1"),
    ],
)
def test_bad_values_name_the_key(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(env={"KONG_DATABASE": "postgres", **env})
