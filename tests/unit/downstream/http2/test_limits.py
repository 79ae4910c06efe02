"""Flood counting per connection (``http2.limits``)."""

from __future__ import annotations

from gateway.downstream.http2.limits import MAX_CONCURRENT_STREAMS, WINDOW, Flood, FloodCounter


def test_each_kind_crosses_its_own_limit_within_a_window() -> None:
    c = FloodCounter(0.0)
    assert not c.add(Flood.SETTINGS, 1.0, Flood.SETTINGS.limit)
    assert not c.add(Flood.PINGS, 1.0, Flood.PINGS.limit)
    assert c.add(Flood.SETTINGS, 2.0)
    assert Flood.RESETS.limit == 2 * MAX_CONCURRENT_STREAMS == 256


def test_a_new_window_starts_from_zero() -> None:
    c = FloodCounter(0.0)
    assert not c.add(Flood.RESETS, 1.0, Flood.RESETS.limit)
    assert not c.add(Flood.RESETS, 1.0 + WINDOW + 0.1)  # the old window's count is gone


def test_streams_at_once_is_per_read_not_per_window() -> None:
    c = FloodCounter(0.0)
    assert not c.add(Flood.STREAMS_AT_ONCE, 1.0, Flood.STREAMS_AT_ONCE.limit)
    c.reset(Flood.STREAMS_AT_ONCE)  # the end of a read
    assert not c.add(Flood.STREAMS_AT_ONCE, 1.0, Flood.STREAMS_AT_ONCE.limit)
    assert c.add(Flood.STREAMS_AT_ONCE, 1.0)
