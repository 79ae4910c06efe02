"""The compiled request path (``gateway.compiled``): fresh extensions, the Makefile's list, the pure-Python switch."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from gateway.compiled import ENV, FILES, stale

ROOT = Path(__file__).resolve().parents[2]


def _module_file(module: str, pure: bool) -> str:
    """Where a fresh interpreter loads ``module`` from, with or without the switch."""
    env = {k: v for k, v in os.environ.items() if k != ENV}
    if pure:
        env[ENV] = "1"
    code = f"import {module} as m; print(m.__file__)"
    return subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_no_compiled_module_is_older_than_its_source() -> None:
    assert stale() == [], "a compiled module is older than its source: run `make install` (or `make uncompiled`)"


def test_a_stale_extension_is_found(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    source = tmp_path / "pkg" / "mod.py"
    ext = tmp_path / "pkg" / "mod.cpython-311-x86_64-linux-gnu.so"
    source.write_text("")
    ext.write_bytes(b"")
    os.utime(ext, (1, 1))
    assert stale(tmp_path, ["pkg/mod.py"]) == ["pkg/mod.py"]
    os.utime(ext, (source.stat().st_mtime + 1,) * 2)
    assert stale(tmp_path, ["pkg/mod.py"]) == []


def test_every_listed_file_exists_and_the_makefile_pattern_finds_it() -> None:
    text = (ROOT / "gateway" / "compiled.py").read_text()
    found = [m.strip('"') for m in re.findall(r'"gateway/[a-z0-9_/]*\.py"', text)]  # the Makefile's grep
    assert found == list(FILES)
    assert all((ROOT / name).is_file() for name in FILES)


def test_the_switch_loads_every_module_from_its_source() -> None:
    module = "gateway.proxy.exchange"
    assert _module_file(module, pure=True).endswith("exchange.py")
    loaded = _module_file(module, pure=False)
    if list((ROOT / "gateway" / "proxy").glob("exchange.*.so")):  # built (make install): the extension runs
        assert loaded.endswith(".so")
    else:
        assert loaded.endswith("exchange.py")


def test_version_all_says_how_the_request_path_runs() -> None:
    env = {k: v for k, v in os.environ.items() if k != ENV}
    out = subprocess.run(
        [sys.executable, "-m", "gateway", "version", "--all"], env={**env, ENV: "1"}, capture_output=True, text=True
    ).stdout
    assert f"request path: pure Python ({ENV} is set)" in out
