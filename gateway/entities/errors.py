"""Kong's database errors as values: one class, Kong's codes, names, messages and HTTP statuses.

Mirrors ``kong/db/errors.lua``. Every failure of a configuration write is one ``EntityError``; the Admin API
renders ``to_json()`` with ``http_status``; the declarative loader prints ``message``. Messages are built
here, from the values being checked, so that each wording exists in exactly one place.

Schema-violation messages follow Kong's ``schema_violation`` formatting:
``@entity`` messages first (without a prefix), then fields in sorted order (``f: msg``, nested ``f.sub: msg``);
one error -> ``schema violation (x)``, several -> ``N schema violations (x; y)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "Code",
    "EntityError",
    "NotFound",
    "flatten_field_errors",
    "foreign_key_violation",
    "invalid_offset",
    "invalid_size",
    "operation_unsupported",
    "primary_key_violation",
    "referenced_by_others",
    "schema_violation",
    "unique_violation",
]


class Code:
    INVALID_PRIMARY_KEY = 1
    SCHEMA_VIOLATION = 2
    PRIMARY_KEY_VIOLATION = 3
    FOREIGN_KEY_VIOLATION = 4
    UNIQUE_VIOLATION = 5
    NOT_FOUND = 6
    INVALID_OFFSET = 7
    DATABASE_ERROR = 8
    INVALID_SIZE = 9
    INVALID_UNIQUE = 10
    INVALID_OPTIONS = 11
    OPERATION_UNSUPPORTED = 12
    FOREIGN_KEYS_UNRESOLVED = 13
    DECLARATIVE_CONFIG = 14
    REFERENCED_BY_OTHERS = 19


_NAMES = {
    1: "invalid primary key",
    2: "schema violation",
    3: "primary key violation",
    4: "foreign key violation",
    5: "unique constraint violation",
    6: "not found",
    7: "invalid offset",
    8: "database error",
    9: "invalid size",
    10: "invalid unique",
    11: "invalid options",
    12: "operation unsupported",
    13: "foreign keys unresolved",
    14: "invalid declarative configuration",
    19: "referenced by others",
}

_HTTP_STATUS = {
    1: 400,
    2: 400,
    3: 400,
    4: 400,
    5: 409,
    6: 404,
    7: 400,
    8: 500,
    9: 400,
    10: 400,
    11: 400,
    12: 405,
    13: 400,
    14: 400,
    19: 400,
}


class EntityError(Exception):
    """A rejected configuration write or read; nothing was changed when this is raised."""

    def __init__(
        self, code: int, message: str, fields: Mapping[str, Any] | None = None, http_status: int | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.name = _NAMES.get(code, "error")
        self.message = message
        self.fields: dict[str, Any] | None = dict(fields) if fields is not None else None
        self.http_status = http_status if http_status is not None else _HTTP_STATUS.get(code, 400)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "name": self.name, "message": self.message}
        if self.fields is not None:
            body["fields"] = self.fields
        return body

    def __repr__(self) -> str:
        return f"EntityError({self.code}, {self.message!r})"


class NotFound(EntityError):
    """The addressed entity does not exist. The Admin API answers 404 ``{"message":"Not found"}``."""

    def __init__(self, message: str = "Not found") -> None:
        super().__init__(Code.NOT_FOUND, message, None, 404)

    def to_json(self) -> dict[str, Any]:
        return {"message": self.message}


def flatten_field_errors(fields: Mapping[str, Any], prefix: str = "") -> list[str]:
    """``{"a": {"b": "x"}, "c": ["y"]}`` -> ``["a.b: x", "c: y"]`` in Kong's order (sorted keys).

    ``@entity`` lists come first and carry no prefix. Lists of messages (several errors for one field)
    are written one item each; lists of per-element errors (``{1: "msg"}``-like) keep their index.
    """
    out: list[str] = []
    entity = fields.get("@entity") if not prefix else None
    if entity:
        out.extend(str(msg) for msg in entity)
    for key in sorted(k for k in fields if not (k == "@entity" and not prefix)):
        value = fields[key]
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.extend(flatten_field_errors(value, name + "."))
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, Mapping):
                    out.extend(flatten_field_errors(item, name + "."))
                elif item is not None:
                    out.append(f"{name}: {item}")
        else:
            out.append(f"{name}: {value}")
    return out


def schema_violation(fields: Mapping[str, Any]) -> EntityError:
    """Kong's code 2. ``fields`` maps field names (and ``@entity``) to messages, possibly nested."""
    parts = flatten_field_errors(fields)
    if len(parts) == 1:
        message = f"schema violation ({parts[0]})"
    else:
        message = f"{len(parts)} schema violations ({'; '.join(parts)})"
    return EntityError(Code.SCHEMA_VIOLATION, message, fields)


def _pretty(key: Mapping[str, Any]) -> str:
    """Lua ``pl.pretty.write(key, "")`` as Kong prints a key: ``{name="foo"}``."""
    inner = ",".join(f'{k}="{v}"' if isinstance(v, str) else f"{k}={v}" for k, v in key.items())
    return "{" + inner + "}"


def unique_violation(key: Mapping[str, Any]) -> EntityError:
    """409: ``UNIQUE violation detected on '{name="foo"}'``."""
    return EntityError(Code.UNIQUE_VIOLATION, f"UNIQUE violation detected on '{_pretty(key)}'", dict(key))


def primary_key_violation(key: Mapping[str, Any]) -> EntityError:
    return EntityError(Code.PRIMARY_KEY_VIOLATION, f"primary key violation on key '{_pretty(key)}'", dict(key))


def foreign_key_violation(field: str, key: Mapping[str, Any], entity: str) -> EntityError:
    """``the foreign key '{id="..."}' does not reference an existing 'certificates' entity.``"""
    message = f"the foreign key '{_pretty(key)}' does not reference an existing '{entity}' entity."
    return EntityError(Code.FOREIGN_KEY_VIOLATION, message, {field: dict(key)})


def referenced_by_others(message: str) -> EntityError:
    return EntityError(Code.REFERENCED_BY_OTHERS, message, None, 400)


def invalid_offset(offset: str, reason: str) -> EntityError:
    return EntityError(Code.INVALID_OFFSET, f"'{offset}' is not a valid offset: {reason}")


def invalid_size(message: str) -> EntityError:
    return EntityError(Code.INVALID_SIZE, message)


def operation_unsupported(message: str) -> EntityError:
    return EntityError(Code.OPERATION_UNSUPPORTED, message, None, 405)
