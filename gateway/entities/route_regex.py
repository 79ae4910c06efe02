"""Route regexes: Kong's (PCRE) spelling compiled for RE2, a linear-time engine. The one place that does it.

Why RE2: a backtracking engine (PCRE, Python's ``re``) takes time exponential in the path on patterns such as
``(a+)+$`` against a path that almost matches, and the worker running it serves nothing else meanwhile. RE2
matches in time linear in the path whatever the pattern. Kong 3.x's default router flavour
(``traditional_compatible``) turns routes into ATC expressions whose regexes the Rust ``regex`` crate compiles:
no backtracking either, so the constructs that need it are refused by Kong 3.x too (its routes schema runs the
expression through the ATC parser: ``Router Expression failed validation: ...``).

Rules. The write-time validators (``typedefs.validate_router_path``, the routes entity check) and the router
both compile through ``compile_path`` / ``compile_header``, so what was accepted is exactly what runs:

1. Spelling: the pattern goes to the engine as written. Named groups ``(?<name>...)`` and ``(?P<name>...)``
   both work (RE2 reads both, which is what Kong's ``?<`` -> ``?P<`` rewrite is for); their captures,
   numbered and named, become the router's ``Match.captures``.
2. Paths (``~/...``): the ``~`` is dropped; the pattern is matched at the start of the normalized path
   (``match``: every alternative is anchored, as the router always did), case-sensitively.
3. Header values (``~*...``): the ``~*`` is dropped and the pattern lowercased, as Kong's
   ``escape_str(value:lower())``; it is searched anywhere in the lowercased header value.
4. A refusal is data, ``RegexError(kind, regex, reason)``:

   - ``Refusal.SYNTAX``: malformed for PCRE too (``/(a``). A path gets Kong's field error
     ``invalid regex: '/(a' (PCRE returned: <RE2's reason>)``.
   - ``Refusal.UNSUPPORTED``: valid PCRE that a linear-time engine cannot run (back-references, look-around,
     atomic groups, possessive quantifiers, recursion, ``\\K``...). The routes entity check reports it as
     Kong 3.x does: ``Router Expression failed validation: regex '/(a)\\1' cannot run in linear time:
     back-references are not supported (at '\\1')``.

   Which construct it was is found by scanning the pattern against ``_PCRE_ONLY`` (a table), only after RE2
   refused it, so the kind does not hang on the wording of one RE2 release.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from typing import Any

import re2

__all__ = [
    "Refusal",
    "RegexError",
    "RouteRegex",
    "compile_header",
    "compile_path",
    "first_refusal",
    "is_header_regex",
    "is_path_regex",
]


class RouteRegex:
    """A compiled route regex, with the two questions the router asks it.

    Text goes to RE2 as UTF-8 bytes: given a ``str``, the binding maps every offset back to characters in
    Python, which costs several times the match itself.
    """

    __slots__ = ("_compiled", "_names", "groups", "pattern")

    def __init__(self, compiled: Any, pattern: str) -> None:
        self._compiled = compiled
        self.pattern = pattern  # as handed to the engine
        self.groups: int = compiled.groups
        # the binding rebuilds its name table on every groupdict(); read it once
        self._names: tuple[tuple[str, int], ...] = tuple(compiled.groupindex.items())

    def match(self, text: str) -> tuple[str, dict[str, str] | None] | None:
        """Match at the start of ``text``: (the matched text, the captures or None without groups), or None.

        Captures are Kong's ``uri_captures``: numbered groups as ``"1"``..., named groups by name, ``"0"`` the
        whole match; groups that did not take part are absent.
        """
        m = self._compiled.match(text.encode())
        if m is None:
            return None
        whole: str = m.group(0).decode("utf-8", "replace")
        if not self.groups:
            return whole, None
        values: tuple[bytes | None, ...] = m.groups()
        captures = {str(i): v.decode("utf-8", "replace") for i, v in enumerate(values, start=1) if v is not None}
        for name, index in self._names:
            value = values[index - 1]
            if value is not None:
                captures[name] = value.decode("utf-8", "replace")
        captures["0"] = whole
        return whole, captures

    def search(self, text: str) -> bool:
        """Whether the regex matches anywhere in ``text``."""
        return self._compiled.search(text.encode()) is not None


class Refusal(enum.Enum):
    SYNTAX = "syntax"  # PCRE refuses it too: a field error on the path
    UNSUPPORTED = "unsupported"  # valid PCRE, needs backtracking: Kong 3.x's router expression error


class RegexError(ValueError):
    """A route regex the engine refuses. ``str()`` is the detail of the routes entity check's message."""

    def __init__(self, kind: Refusal, regex: str, reason: str) -> None:
        super().__init__(kind, regex, reason)
        self.kind = kind
        self.regex = regex  # as the user wrote it, without ``~`` / ``~*``
        self.reason = reason

    def __str__(self) -> str:
        if self.kind is Refusal.UNSUPPORTED:
            return f"regex '{self.regex}' cannot run in linear time: {self.reason}"
        return f"invalid regex '{self.regex}': {self.reason}"


# PCRE constructs that need backtracking (or that RE2 lacks), tried in order at each position of the pattern
# outside escapes' second characters, character classes and \Q...\E quotes: (pattern, what the message calls it).
_PCRE_ONLY: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), feature)
    for pattern, feature in (
        (r"\\[1-9][0-9]*|\\k[<'{]?\w*[>'}]?|\\g\{?[+-]?\w*\}?|\(\?P=\w*\)?", "back-references"),
        (r"\(\?[=!]", "look-ahead assertions"),
        (r"\(\?<[=!]", "look-behind assertions"),
        (r"\(\?>", "atomic groups"),
        (r"\(\?(?:R|[+-]?[0-9]+|&\w*|P>\w*)\)?", "recursion and subroutine calls"),
        (r"\\K", "match start resets"),
        (r"\(\?C[0-9]*\)?", "callouts"),
        (r"\(\?\|", "branch-reset groups"),
        (r"\(\?'\w*'?", "quoted group names"),
        (r"\(\?#", "comment groups"),
        (r"\(\*[A-Z][A-Z0-9_]*", "PCRE verbs"),
        (r"(?:[*+?]|\{[0-9]+(?:,[0-9]*)?\})\+", "possessive quantifiers"),
        (r"\\[ZG]", "the \\Z and \\G anchors"),
        (r"\\[hHRXe]|\\c.|\\o\{", "PCRE-only escapes"),
        (r"\(\?\^[A-Za-z-]*\)?|\(\?[A-Za-z-]*[xnJ][A-Za-z-]*[:)]?", "PCRE-only flags"),
    )
)

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # RE2 would print every refusal on stderr


def is_path_regex(path: str) -> bool:
    return path.startswith("~")


def is_header_regex(value: str) -> bool:
    return value.startswith("~*")


def compile_path(path: str) -> RouteRegex:
    """A ``~/...`` route path, compiled (rule 2). Raises ``RegexError``."""
    return _compile(path[1:], path[1:])


def compile_header(value: str) -> RouteRegex:
    """A ``~*...`` route header value, compiled lowercased (rule 3). Raises ``RegexError``."""
    return _compile(value[2:].lower(), value[2:])


def first_refusal(paths: Iterable[str] | None, headers: Mapping[str, Iterable[str]] | None) -> RegexError | None:
    """The first regex of a route that the engine refuses, paths before headers (Kong's expression order)."""
    try:
        for path in paths or ():
            if is_path_regex(path):
                compile_path(path)
        for values in (headers or {}).values():
            for value in values:
                if is_header_regex(value):
                    compile_header(value)
    except RegexError as exc:
        return exc
    return None


def _compile(regex: str, written: str) -> RouteRegex:
    try:
        compiled = re2.compile(regex, _OPTIONS)
    except re2.error as exc:
        found = _pcre_only(written)
        if found is not None:
            construct, feature = found
            reason = f"{feature} are not supported (at '{construct}')"
            raise RegexError(Refusal.UNSUPPORTED, written, reason) from None
        raise RegexError(Refusal.SYNTAX, written, _reason(exc)) from None
    return RouteRegex(compiled, regex)


def _reason(exc: Exception) -> str:
    text = exc.args[0] if exc.args else "invalid regex"
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)


def _pcre_only(regex: str) -> tuple[str, str] | None:
    """The first construct of ``regex`` listed in ``_PCRE_ONLY``: (its text, its feature), or None."""
    i, n = 0, len(regex)
    while i < n:
        for pattern, feature in _PCRE_ONLY:
            m = pattern.match(regex, i)
            if m is not None:
                return m.group(0), feature
        c = regex[i]
        if c == "\\":
            if regex.startswith("\\Q", i):
                end = regex.find("\\E", i + 2)
                i = n if end == -1 else end + 2
            else:
                i += 2
        elif c == "[":
            i = _class_end(regex, i)
        else:
            i += 1
    return None


def _class_end(regex: str, i: int) -> int:
    """The index after the character class opening at ``i`` (a leading ``]`` is literal, as in PCRE)."""
    j, n = i + 1, len(regex)
    if regex.startswith("^", j):
        j += 1
    if regex.startswith("]", j):
        j += 1
    while j < n:
        c = regex[j]
        if c == "\\":
            j += 2
        elif c == "]":
            return j + 1
        elif regex.startswith("[:", j):
            end = regex.find(":]", j + 2)
            j = j + 1 if end == -1 else end + 2
        else:
            j += 1
    return n
