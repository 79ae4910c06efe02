"""Fixtures for the store tests: every test runs against SQLite (a file in tmp_path) and memory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.entities.errors import EntityError
from gateway.entities.plugin_configs import PluginSpec
from gateway.entities.schema import Field, Schema
from gateway.entities.values import NULL
from gateway.store import Database, open_database
from tests.fixtures.certs import Issued, make_ca, make_cert
from tests.fixtures.plugins import register_for_test


@pytest.fixture(params=["sqlite", "off"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    database = open_database(request.param, str(tmp_path / "gateway.db") if request.param == "sqlite" else None)
    yield database
    database.close()


class Pki:
    """Certificates shared by the store tests (key generation is the slow part, so build them once)."""

    def __init__(self) -> None:
        self.root = make_ca("Kong Testing Root CA")
        self.other_root = make_ca("Other Root CA")
        self.inter = make_ca("Kong Testing Intermediate CA", issuer=self.root)
        self.rsa = make_cert("ssl-example.com", issuer=self.inter)
        self.rsa2 = make_cert("example2.com", issuer=self.inter)
        self.ec = make_cert("ssl-example.com", issuer=self.inter, key_type="ec")
        self.leaf_only = make_cert("not-a-ca.test", issuer=self.root)

    def pair(self, issued: Issued | None = None) -> dict[str, str]:
        issued = issued or self.rsa
        return {"cert": issued.chain_pem, "key": issued.key_pem}


@pytest.fixture(scope="session")
def pki() -> Pki:
    return Pki()


@pytest.fixture
def rejected(db: Database) -> Callable[..., EntityError]:
    """Run a write that must fail; assert the whole store is unchanged; return the error."""

    def run(fn: Callable[..., Any], *args: Any) -> EntityError:
        before = db.export()
        version = db.version
        with pytest.raises(EntityError) as info:
            fn(*args)
        assert db.export() == before, "a rejected write changed the store"
        assert db.version == version
        return info.value

    return run


CUSTOM_CONFIG = Schema("custom.config", [("a", Field("integer", default=NULL)), ("b", Field("integer", default=NULL))])


@pytest.fixture
def custom_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two plugins registered for one test, as a plugin of this gateway registers itself: ``custom`` and
    ``custom-b``, which (unlike the bundled authentication plugins) may be scoped to a consumer; config ``a``, ``b``.
    The store's plugin rules (scopes, cascades, protocols) are exercised with them."""
    for name in ("custom", "custom-b"):
        register_for_test(monkeypatch, PluginSpec(name, CUSTOM_CONFIG))
