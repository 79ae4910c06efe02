"""Regex routes over a real socket: matching takes time linear in the path (issue 11, item 3).

The reproducer was a route ``~/r/(a+)+$`` and the path ``/r/`` + 27 'a' + '!': 4 s of CPU per request with
a backtracking engine, during which the worker served nothing else. Every path below is different, so the
router's match cache never answers for the engine; with a backtracking engine the first one alone would
blow the time bound.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path

import pytest

from tests.fixtures.nginx import NginxRunner
from tests.integration.proxy.harness import config, read_response, route, running_gateway, service

pytestmark = pytest.mark.timeout(60)

ECHO = r"""
server {
    listen 127.0.0.1:{port};
    location / { return 200 "uri=$request_uri|x=$http_x_v"; }
}
"""

_BOUND_S = 2.0  # the whole batch; one 27-'a' path took 4 s with Python's re


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str, headers: str = ""
) -> tuple[int, dict[str, str], bytes]:
    writer.write(f"GET {path} HTTP/1.1\r\nHost: regex.test\r\n{headers}\r\n".encode())
    await writer.drain()
    status, head, body, _ = await read_response(reader)
    return status, head, body


def _no_route(body: bytes, head: dict[str, str]) -> bool:
    return json.loads(body) == {
        "message": "no Route matched with those values",
        "request_id": head["x-kong-request-id"],
    }


async def test_catastrophic_regexes_answer_in_linear_time(tmp_path: Path, nginx: NginxRunner, http_parser: str) -> None:
    ng = nginx.start(ECHO)
    svc = service("127.0.0.1", ng.port)
    cfg = config(
        [svc],
        [
            route(svc, paths=["~/r/(a+)+$"], strip_path=False),
            route(svc, paths=["/h"], headers={"x-v": ["~*^(a+)+$"]}, strip_path=False),
        ],
    )
    near_misses = ["/r/" + "a" * n + "!" for n in (*range(27, 47), 5000)]
    header_misses = ["a" * n + "!" for n in (*range(27, 37), 5000)]
    async with running_gateway(tmp_path, cfg, http_parser=http_parser) as gw:
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        try:
            start = time.perf_counter()
            for path in near_misses:
                status, head, body = await _exchange(reader, writer, path)
                assert status == 404 and _no_route(body, head), (path[:40], status, body[:200])
            for value in header_misses:
                status, head, body = await _exchange(reader, writer, "/h", f"X-V: {value}\r\n")
                assert status == 404 and _no_route(body, head), (value[:40], status, body[:200])
            elapsed = time.perf_counter() - start
            # the same routes still match what they should, through to the upstream
            status, _, body = await _exchange(reader, writer, "/r/aaaa")
            assert (status, body) == (200, b"uri=/r/aaaa|x=")
            status, _, body = await _exchange(reader, writer, "/h/1", "X-V: AAA\r\n")  # lowercased, then searched
            assert (status, body) == (200, b"uri=/h/1|x=AAA")
        finally:
            writer.close()
        lines = gw.access_lines()
        error_log = gw.error_log
    assert elapsed < _BOUND_S, f"{len(near_misses) + len(header_misses)} requests took {elapsed:.2f} s"
    assert len(lines) == len(near_misses) + len(header_misses) + 2
    for path, line in zip(near_misses, lines, strict=False):
        assert f'"GET {path} HTTP/1.1" 404 ' in line
    for line in lines[len(near_misses) : -2]:
        assert '"GET /h HTTP/1.1" 404 ' in line
    assert '"GET /r/aaaa HTTP/1.1" 200 ' in lines[-2]
    assert '"GET /h/1 HTTP/1.1" 200 ' in lines[-1]
    assert "could not add route" not in error_log


async def test_stored_route_with_a_back_reference_is_left_out_and_logged(tmp_path: Path, nginx: NginxRunner) -> None:
    """A route written before the engine's refusals were validated (an old database): Kong's router build line."""
    ng = nginx.start(ECHO)
    svc = service("127.0.0.1", ng.port)
    bad = route(svc, paths=[r"~/(a)\1"])
    async with running_gateway(tmp_path, config([svc], [])) as gw:
        gw.reconfigure(config([svc], [bad, route(svc, paths=["/ok"])]))
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        try:
            status, head, body = await _exchange(reader, writer, "/aa")
            assert status == 404 and _no_route(body, head)
            status, _, body = await _exchange(reader, writer, "/ok")
            assert (status, body) == (200, b"uri=/|x=")  # strip_path
        finally:
            writer.close()
        error_log = gw.error_log
    expected = (
        f"could not add route: {bad['id']}, err: "
        r"regex '/(a)\1' cannot run in linear time: back-references are not supported (at '\1')"
    )
    assert re.search(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[error\] \d+#0: " + re.escape(expected) + "$", error_log, re.M)
