"""``scenarios.rotated_rounds``, the one loop ``run_scenario``, ``compare`` and ``s5_split`` run their rounds with:
every server once per round, the order rotated from round to round, each measurement handed back as its run ends."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks import scenarios


def test_each_round_runs_every_server_once_in_a_rotated_order(monkeypatch: pytest.MonkeyPatch) -> None:
    runs: list[tuple[str, float]] = []

    def fake_drive(scenario: Any, env: Any, server: str, duration: float) -> str:
        runs.append((server, duration))
        return f"measured {server}"

    monkeypatch.setattr(scenarios, "drive", fake_drive)
    monkeypatch.setattr(scenarios.time, "sleep", lambda seconds: None)
    servers: Any = {"a": "A", "b": "B", "c": "C"}
    got = list(scenarios.rotated_rounds(scenarios.SCENARIOS[0], None, servers, 4, 2.5))  # type: ignore[arg-type]
    assert [(index, name) for index, name, _ in got] == [
        (0, "a"), (0, "b"), (0, "c"),
        (1, "b"), (1, "c"), (1, "a"),
        (2, "c"), (2, "a"), (2, "b"),
        (3, "a"), (3, "b"), (3, "c"),
    ]  # fmt: skip
    assert [m for _, _, m in got] == [f"measured {server}" for server, _ in runs]
    assert {duration for _, duration in runs} == {2.5} and [s for s, _ in runs][:3] == ["A", "B", "C"]
