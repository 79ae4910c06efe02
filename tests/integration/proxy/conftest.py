"""Fixtures for proxy integration tests: both parsers, nginx upstreams, small Python upstreams."""

from __future__ import annotations

import pytest

from tests.fixtures.nginx import nginx  # noqa: F401  (fixture re-export)


@pytest.fixture(params=["httptools", "h11"])
def http_parser(request: pytest.FixtureRequest) -> str:
    """Every test using this runs against both downstream parsers."""
    return str(request.param)
