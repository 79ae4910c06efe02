"""A module compiled with mypyc (``make compiled``) is imported from its ``.so`` before its ``.py``: a ``.so`` older
than its source runs the old code, silently. Pure Python (no ``.so``, the default): nothing to check."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "gateway"


def stale_extensions(root: Path) -> list[str]:
    """The extension modules under ``root`` older than the ``.py`` next to them (paths relative to ``root``)."""
    stale = []
    for ext in sorted(root.rglob("*.so")):
        source = ext.with_name(ext.name.split(".", 1)[0] + ".py")
        if source.exists() and ext.stat().st_mtime < source.stat().st_mtime:
            stale.append(str(ext.relative_to(root)))
    return stale


def test_no_compiled_module_is_older_than_its_source() -> None:
    assert stale_extensions(ROOT) == [], "a compiled module is older than its source: `make compiled` (or uncompiled)"


def test_a_stale_extension_is_found(tmp_path: Path) -> None:
    source = tmp_path / "mod.py"
    ext = tmp_path / "mod.cpython-311-x86_64-linux-gnu.so"
    source.write_text("")
    ext.write_bytes(b"")
    os.utime(ext, (1, 1))
    assert stale_extensions(tmp_path) == [ext.name]
    os.utime(ext, (source.stat().st_mtime + 1,) * 2)
    assert stale_extensions(tmp_path) == []
