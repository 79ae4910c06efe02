"""Fixtures shared by every test folder: the PostgreSQL server (started once per session, on first use)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fixtures.postgres import PgServer, pg_server


@pytest.fixture(scope="session")
def postgres() -> Iterator[PgServer]:
    """A real PostgreSQL server on a free loopback port, for the tests that name it (see ``fixtures/postgres``)."""
    yield from pg_server()
