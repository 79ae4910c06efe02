"""PCRE route regexes as Python ``re`` patterns.

Kong compiles route regex paths with PCRE. Python's ``re`` shares the common syntax; the PCRE spellings
that routes use in practice and Python spells differently are rewritten here: named groups
``(?<name>...)`` / ``(?'name'...)`` become ``(?P<name>...)`` and back-references ``\\k<name>`` /
``\\k'name'`` / ``\\k{name}`` become ``(?P=name)``. Anything else PCRE-only (recursion, ``\\K``, callouts)
fails to compile and is reported as an invalid regex. The router should compile with ``to_python`` too,
so validation and matching agree.
"""

from __future__ import annotations

import re

__all__ = ["compile_pcre", "to_python"]

_NAMED_GROUP = re.compile(r"(?<!\\)\(\?(?:<(?![=!])([A-Za-z_][A-Za-z0-9_]*)>|'([A-Za-z_][A-Za-z0-9_]*)')")
_BACKREF = re.compile(r"\\k(?:<([A-Za-z_]\w*)>|'([A-Za-z_]\w*)'|\{([A-Za-z_]\w*)\})")


def to_python(pattern: str) -> str:
    """The Python spelling of a PCRE pattern (see the module docstring)."""
    pattern = _NAMED_GROUP.sub(lambda m: f"(?P<{m.group(1) or m.group(2)}>", pattern)
    return _BACKREF.sub(lambda m: f"(?P={m.group(1) or m.group(2) or m.group(3)})", pattern)


def compile_pcre(pattern: str) -> re.Pattern[str]:
    """``re.compile(to_python(pattern))``; raises ``re.error`` for what Python cannot express."""
    return re.compile(to_python(pattern))
