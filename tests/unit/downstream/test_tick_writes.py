"""``flow.TickWrites``: flushes held during a tick run once, in order, after the tick's callbacks, on any loop."""

from __future__ import annotations

import asyncio
import contextvars

import pytest
import uvloop

from gateway.downstream.flow import TickWrites

_SEEN: contextvars.ContextVar[str] = contextvars.ContextVar("seen", default="unset")


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
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        hold("c")  # a later tick registers its own run
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
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
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    assert ran == ["second"]
    assert errors == ["deferred write failed"]
