"""Values as Kong's schema framework sees them: absent vs null, the type predicates, the messages' spelling.

Values are JSON-shaped Python: ``str``, ``int``/``float`` (``bool`` is never a number), ``bool``, ``list``,
``dict``, ``None``. ``UNSET`` (not given) and ``NULL`` (a rule about JSON null) are the two markers the field
definitions, the validators and the entity checks share; they live here, below all three, so that none of
them imports another to learn what "absent" means.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "ERR",
    "NULL",
    "UNSET",
    "fmt_num",
    "get_path",
    "is_integer",
    "is_nonempty",
    "is_number",
    "is_uuid",
    "length",
    "quoted_list",
    "set_path",
]


class _Sentinel:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


UNSET: Any = _Sentinel("UNSET")
"""An attribute that was not given (no default, no ``eq`` rule...)."""

NULL: Any = _Sentinel("NULL")
"""Used as ``eq=NULL`` / ``ne=NULL`` / ``default=NULL``: the rule is about JSON null (Python ``None``)."""

_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)

#: Kong's ``validation_errors`` for the type and presence checks
ERR = {
    "ARRAY": "expected an array",
    "SET": "expected a set",
    "MAP": "expected a map",
    "RECORD": "expected a record",
    "STRING": "expected a string",
    "NUMBER": "expected a number",
    "BOOLEAN": "expected a boolean",
    "INTEGER": "expected an integer",
    "REQUIRED": "required field missing",
    "UNKNOWN": "unknown field",
    "REQUIRED_FOR_ENTITY_CHECK": "field required for entity check",
    "MISSING_PK": "missing primary key",
}


def is_uuid(value: Any) -> bool:
    """Kong's ``uuid`` validator: 36 characters, 8-4-4-4-12 hex, any case, any version."""
    return isinstance(value, str) and len(value) == 36 and _UUID_RE.fullmatch(value) is not None


def is_nonempty(value: Any) -> bool:
    """Kong's ``is_nonempty``: not absent/null, not an empty string, list or dict."""
    return not (value is None or value is UNSET or value == "" or (isinstance(value, list | dict) and not value))


def quoted_list(words: Sequence[Any]) -> str:
    """``['a', 'b']`` -> ``'a', 'b'``; nested lists become ``('a', 'b')``."""
    parts = []
    for word in words:
        if isinstance(word, list | tuple):
            parts.append(f"({quoted_list(word)})")
        else:
            parts.append(f"'{word}'")
    return ", ".join(parts)


def fmt_num(value: Any) -> str:
    """Numbers as Lua's ``%d``/``tostring`` print them in messages (``2147483646``, not ``2147483646.0``)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_integer(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and math.isfinite(value) and value.is_integer()


def length(value: Any) -> int:
    """A length as Lua's ``#`` counts it: UTF-8 bytes for strings."""
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    return len(value)


def get_path(entity: Mapping[str, Any] | None, name: str) -> Any:
    """``get_field`` with dotted names; returns ``UNSET`` when absent."""
    if not isinstance(entity, Mapping):
        return UNSET
    head, dot, tail = name.partition(".")
    if not dot:
        return entity.get(head, UNSET)
    return get_path(entity.get(head), tail)


def set_path(entity: dict[str, Any], name: str, value: Any) -> None:
    """Set a dotted name, creating the records on the way."""
    head, dot, tail = name.partition(".")
    if not dot:
        entity[head] = value
        return
    sub = entity.setdefault(head, {})
    set_path(sub, tail, value)
