"""The request path compiled with mypyc, and the switch back to pure Python.

Why: a proxied request crosses some ninety Python functions between the parser's callbacks and the two socket
writes; interpreted, they cost about twice what the same code costs compiled (``benchmarks/MYPYC.md``,
``benchmarks/TUNING.md``). mypyc compiles the modules below from their type hints into C extension modules; the
sources stay plain, type-checked Python, and nothing else changes.

How:

1. ``make install`` (so ``make run`` and ``make test``) compiles the files of ``FILES`` with the pinned mypy's mypyc,
   as one group, and puts each extension next to its source; the Makefile reads the list from this file. It builds
   again when one of them changed, and ``make uncompiled`` removes the extensions.
2. Python imports a module's extension before its source: an extension older than its source runs the old code.
   ``stale()`` finds them; the test suite fails on one (``tests/unit/test_compiled.py``).
3. ``GATEWAY_PURE_PYTHON=1`` in the environment: ``gateway/__init__`` installs ``SourceFirst``, which loads every
   ``gateway`` module from its source. The same code, interpreted: for tracebacks with source lines, ``cProfile``
   (``benchmarks.profile --cprofile`` sets it), a debugger, or to rule the compiler out. ``make test`` runs part of
   the suite that way too, so both ways stay green.
4. ``describe()`` says which way this process runs (``gateway version --all``).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

__all__ = ["ENV", "FILES", "SourceFirst", "describe", "install_source_first", "stale"]

ENV = "GATEWAY_PURE_PYTHON"

#: the compiled modules, paths from the repository's root (one per line: the Makefile greps them from here)
FILES = (
    "gateway/downstream/request.py",
    "gateway/downstream/connection.py",
    "gateway/downstream/http1.py",
    "gateway/downstream/flow.py",
    "gateway/downstream/headers.py",
    "gateway/downstream/shared.py",
    "gateway/proxy/request_head.py",
    "gateway/proxy/response_head.py",
    "gateway/proxy/access.py",
    "gateway/proxy/router.py",
    "gateway/proxy/lane.py",
    "gateway/proxy/exchange_base.py",
    "gateway/proxy/upstream_tries.py",
    "gateway/proxy/stream_tries.py",
    "gateway/proxy/relay.py",
    "gateway/proxy/exchange.py",
    "gateway/proxy/context.py",
    "gateway/proxy/state.py",
    "gateway/upstream/connection.py",
    "gateway/upstream/pool.py",
    "gateway/upstream/h2/stream.py",
    "gateway/tls/engine/raw.py",
    "gateway/tls/engine/session.py",
    "gateway/tls/engine/app_transport.py",
    "gateway/tls/engine/transport.py",
    "gateway/observability/tls_metrics.py",
    "gateway/upstream/dns.py",
    "gateway/upstream/target.py",
    "gateway/proxy/matchers.py",
    "gateway/upstream/events.py",
    "gateway/downstream/client.py",
    "gateway/downstream/exchange.py",
    "gateway/downstream/tls_listener.py",
)

_ROOT = Path(__file__).resolve().parent.parent
_SOURCE = (importlib.machinery.SourceFileLoader, importlib.machinery.SOURCE_SUFFIXES)


class SourceFirst(importlib.abc.MetaPathFinder):
    """Finds ``gateway`` modules by their ``.py`` only, so that no compiled extension is loaded."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if path is None or not fullname.startswith("gateway."):
            return None
        for entry in path:
            spec = importlib.machinery.FileFinder(entry, _SOURCE).find_spec(fullname, target)
            if spec is not None and spec.loader is not None:
                return spec
        return None  # not a source module here: the usual finders decide


def install_source_first() -> None:
    """Put ``SourceFirst`` first on the import path (``gateway/__init__`` calls it when ``ENV`` is set)."""
    if not any(isinstance(finder, SourceFirst) for finder in sys.meta_path):
        sys.meta_path.insert(0, SourceFirst())


def _extension(source: Path) -> Path | None:
    """The compiled extension built for ``source``, if there is one."""
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = source.with_suffix(suffix)
        if candidate.exists():
            return candidate
    return None


def stale(root: Path = _ROOT, files: Sequence[str] = FILES) -> list[str]:
    """The files whose extension is older than the source next to it (rule 2)."""
    old = []
    for name in files:
        source = root / name
        ext = _extension(source)
        if ext is not None and ext.stat().st_mtime < source.stat().st_mtime:
            old.append(name)
    return old


def describe() -> str:
    """How this process runs the request path: compiled, pure Python on request, or pure Python for want of a build."""
    if os.environ.get(ENV):
        return f"pure Python ({ENV} is set)"
    built = [name for name in FILES if _extension(_ROOT / name) is not None]
    if not built:
        return "pure Python (not compiled: make install compiles it)"
    old = stale()
    note = f"; {len(old)} older than their source, run make install" if old else ""
    return f"compiled with mypyc ({len(built)} of {len(FILES)} modules{note})"
