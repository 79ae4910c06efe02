"""Fixtures of the upstream TLS tests: one PKI per session, one nginx with every mock upstream per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fixtures.nginx import NginxRunner
from tests.integration.tls.upstream.pki import Pki
from tests.integration.tls.upstream.upstreams import Upstreams, start_upstreams


@pytest.fixture(scope="session")
def pki() -> Pki:
    return Pki.build()


@pytest.fixture(scope="module")
def upstreams(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstreams]:
    runner = NginxRunner(tmp_path_factory.mktemp("upstreams"))
    try:
        yield start_upstreams(runner, pki)
    finally:
        runner.stop_all()
