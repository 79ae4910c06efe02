"""``flow``'s writes: ``TickWrites`` (flushes held during a tick run once, in order, after the tick's callbacks, on any
loop) and ``write_pieces`` (held pieces leave in one call: joined when small, as they are when large)."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Coroutine
from typing import Any

import pytest
import uvloop

from gateway.downstream.flow import JOIN_LIMIT, TickWrites, write_pieces

_SEEN: contextvars.ContextVar[str] = contextvars.ContextVar("seen", default="unset")


async def _two_ticks() -> None:
    """Two passes of the loop: the one where flushes are held and the one that runs them."""
    await asyncio.sleep(0)
    await asyncio.sleep(0)


def _run_and_close(loop: asyncio.AbstractEventLoop, main: Coroutine[Any, Any, None]) -> None:
    try:
        loop.run_until_complete(main)
    finally:
        loop.close()


@pytest.mark.parametrize("new_loop", [asyncio.new_event_loop, uvloop.new_event_loop], ids=["asyncio", "uvloop"])
def test_held_flushes_run_once_in_order_after_the_ticks_callbacks(new_loop: object) -> None:
    loop: asyncio.AbstractEventLoop = new_loop()  # type: ignore[operator]
    ticks = TickWrites()
    events: list[str] = []

    def hold(name: str) -> None:
        events.append(f"hold {name}")
        ticks.hold(loop, lambda: events.append(f"flush {name}:{_SEEN.get()}"))

    def first() -> None:
        _SEEN.set("caller")  # the caller's context variables are not the flushes' concern
        hold("a")
        hold("b")

    async def main() -> None:
        loop.call_soon(first)
        loop.call_soon(events.append, "other callback")
        await _two_ticks()
        hold("c")  # a later tick registers its own run
        await _two_ticks()

    _run_and_close(loop, main())
    assert events == [
        "hold a",
        "hold b",
        "other callback",
        "flush a:unset",
        "flush b:unset",
        "hold c",
        "flush c:unset",
    ]


def test_a_flush_that_raises_does_not_stop_the_others() -> None:
    loop = uvloop.new_event_loop()
    ticks = TickWrites()
    ran: list[str] = []
    errors: list[str] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context["message"]))

    def broken() -> None:
        raise OSError("gone")

    async def main() -> None:
        ticks.hold(loop, broken)
        ticks.hold(loop, lambda: ran.append("second"))
        await _two_ticks()

    _run_and_close(loop, main())
    assert ran == ["second"]
    assert errors == ["deferred write failed"]


class _Transport:
    """Records the calls ``write_pieces`` makes."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    def write(self, data: bytes) -> None:
        self.calls.append(("write", data))

    def writelines(self, pieces: list[bytes]) -> None:
        self.calls.append(("writelines", list(pieces)))


def test_one_piece_is_written_as_it_is() -> None:
    transport = _Transport()
    piece = b"HTTP/1.1 200 OK\r\n\r\n"
    write_pieces(transport, [piece])  # type: ignore[arg-type]
    assert transport.calls == [("write", piece)]
    assert transport.calls[0][1] is piece


def test_small_pieces_leave_joined_in_one_write() -> None:
    transport = _Transport()
    write_pieces(transport, [b"head\r\n\r\n", b"body", b"x" * (JOIN_LIMIT - 14)])  # type: ignore[arg-type]
    assert transport.calls == [("write", b"head\r\n\r\nbody" + b"x" * (JOIN_LIMIT - 14))]


def test_large_pieces_leave_by_writelines_uncopied() -> None:
    transport = _Transport()
    body = b"x" * JOIN_LIMIT
    write_pieces(transport, [b"head\r\n\r\n", body])  # type: ignore[arg-type]
    assert transport.calls == [("writelines", [b"head\r\n\r\n", body])]
    assert transport.calls[0][1][1] is body  # type: ignore[index]
