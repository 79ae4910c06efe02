"""The stream tests run on both loops: uvloop (production, whose transports differ in what a paused, half-closed or
reset socket does) and the stdlib asyncio loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
import uvloop

from tests.integration.stream.pki import StreamPki


def pytest_asyncio_loop_factories(config: Any, item: Any) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


@pytest.fixture(scope="session")
def stream_pki(tmp_path_factory: pytest.TempPathFactory) -> StreamPki:
    return StreamPki(tmp_path_factory.mktemp("stream-pki"))
