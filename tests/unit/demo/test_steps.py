"""The demo's steps table and the curl lines it prints, without running anything."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any, cast

from gateway.demo.client import INLINE_BODY, Admin
from gateway.demo.gatewayproc import DemoGateway
from gateway.demo.steps import STEPS


def test_steps_are_numbered_in_order_and_cover_the_four_layers() -> None:
    assert [s.number for s in STEPS] == list(range(1, len(STEPS) + 1))
    assert [s.layer for s in STEPS] == sorted(s.layer for s in STEPS)
    assert {s.layer for s in STEPS} == {1, 2, 3, 4}
    assert all(s.title and s.teaches.endswith((".", ")")) for s in STEPS)


class _Gateway:
    admin_url = "http://127.0.0.1:8001"


def _admin(tmp_path: Path) -> Admin:
    return Admin(cast(DemoGateway, _Gateway()), tmp_path, lambda _line: None)


def test_a_short_body_is_inline_and_quoted(tmp_path: Path) -> None:
    body: dict[str, Any] = {"name": "it's", "url": "https://x/"}
    line = _admin(tmp_path)._curl("POST", "/services", json.dumps(body))
    words = shlex.split(line)
    assert words[:5] == ["curl", "-sS", "-X", "POST", "http://127.0.0.1:8001/services"]
    assert json.loads(words[-1]) == body  # the shell gives curl exactly the JSON the demo sent


def test_a_long_body_goes_to_a_file_the_line_sends(tmp_path: Path) -> None:
    text = json.dumps({"cert": "x" * (INLINE_BODY + 1)})
    line = _admin(tmp_path)._curl("POST", "/certificates", text)
    data = shlex.split(line)[-1]
    assert data.startswith("@")
    assert Path(data[1:]).read_text() == text
    assert Path(data[1:]).parent == tmp_path / "requests"
