"""Kong's database errors as values: one class, Kong's codes, names, messages and HTTP statuses.

Mirrors ``kong/db/errors.lua``. Every failure of a configuration write is one ``EntityError``; the Admin API
renders ``to_json()`` with ``http_status``; the declarative loader prints ``message``. Messages are built
here, from the values being checked, so that each wording exists in exactly one place.

Schema-violation messages follow Kong's ``schema_violation`` formatting:
``@entity`` messages first (without a prefix), then fields in sorted order (``f: msg``, nested ``f.sub: msg``);
one error -> ``schema violation (x)``, several -> ``N schema violations (x; y)``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "Code",
    "DeclarativeConfigError",
    "EntityError",
    "NotFound",
    "flatten_field_errors",
    "foreign_key_restricted",
    "foreign_key_violation",
    "invalid_offset",
    "invalid_primary_key",
    "invalid_size",
    "lua_pretty",
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


def lua_pretty(value: Any, indent: str = "  ", _level: int = 0) -> str:
    """Render a value the way Penlight's ``pretty.write`` does, which Kong uses inside messages.

    ``indent=""`` gives the compact one-line form (``{name="foo",route=null}``) used for keys and the
    declarative-config message; the default two-space indent gives the multi-line form Kong prints for
    nested field errors. Dict keys are sorted; lists are Lua sequences (1-based); ``None`` holes in a list
    are skipped and later items get an explicit ``[i]=`` key, as a sparse Lua table would; ``None`` as a
    value is written ``null`` (Kong's ``ngx.null``).
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    items: list[str] = []
    eq = " = " if indent else "="
    if isinstance(value, Mapping):
        for key in sorted(value, key=str):
            k = str(key)
            name = k if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k) else f'["{k}"]'
            items.append(f"{name}{eq}{lua_pretty(value[key], indent, _level + 1)}")
    elif isinstance(value, list | tuple):
        sequential = True
        for i, item in enumerate(value, 1):
            if item is None:
                sequential = False
                continue
            rendered = lua_pretty(item, indent, _level + 1)
            items.append(rendered if sequential else f"[{i}]{eq}{rendered}")
    else:
        return lua_pretty(str(value), indent, _level)
    if not items:
        return "{}"
    if not indent:
        return "{" + ",".join(items) + "}"
    inner = indent * (_level + 1)
    return "{\n" + ",\n".join(inner + item for item in items) + "\n" + indent * _level + "}"


def _sub_keys(value: Mapping[str, Any] | list[Any]) -> list[tuple[str, Any]]:
    """The (key, value) pairs of a nested error table in Kong's order; list indexes are 1-based."""
    if isinstance(value, Mapping):
        return [(str(k), value[k]) for k in sorted(value, key=str)]
    return [(str(i), v) for i, v in enumerate(value, 1) if v is not None]


def flatten_field_errors(fields: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Kong's ``schema_violation`` message parts, exactly as ``kong/db/errors.lua`` builds them.

    ``@entity`` messages come first, without a prefix; then each field in sorted order: a string is
    ``f: msg``; a nested table (record errors, or per-element errors of an array, whose keys Kong writes
    1-based) goes exactly one level deep, ``f.sub: msg``, and anything deeper is rendered with
    ``lua_pretty`` as Kong does. ``prefix`` is kept for callers that flatten a sub-table themselves.
    """
    out: list[str] = []
    entity = fields.get("@entity")
    if entity:
        out.extend(str(msg) for msg in (entity if isinstance(entity, list) else [entity]))
    for key in sorted(k for k in fields if k != "@entity"):
        value = fields[key]
        name = f"{prefix}{key}"
        if isinstance(value, Mapping | list):
            for sub, item in _sub_keys(value):
                text = lua_pretty(item) if isinstance(item, Mapping | list) else str(item)
                out.append(f"{name}.{sub}: {text}")
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
    """Lua ``pl.pretty.write(key, "")`` as Kong prints a key: ``{name="foo"}``, ``{route=null}``."""
    return lua_pretty(dict(key), "")


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


def foreign_key_restricted(parent: str, child: str) -> EntityError:
    """Deleting a parent that a child still references without ``on_delete = "cascade"``.

    ``an existing 'routes' entity references this 'services' entity`` (code 4, HTTP 400), with
    ``fields = {"@referenced_by": "routes"}``, as Kong's database strategies report it.
    """
    message = f"an existing '{child}' entity references this '{parent}' entity"
    return EntityError(Code.FOREIGN_KEY_VIOLATION, message, {"@referenced_by": child})


def foreign_keys_unresolved(errors: Mapping[str, Mapping[str, tuple[str, Any, str]]]) -> EntityError:
    """Code 13: a foreign key given by a unique field (``service.name=x``) that matches no entity.

    ``errors`` maps the foreign field to ``{unique_field: (unique_field, value, referenced_entity)}``; the
    message is Kong's ``foreign key unresolved (service.name: the foreign key cannot be resolved with
    '{name="x"}' for an existing 'services' entity)`` (``N foreign keys unresolved (...)`` for several).
    """
    fields: dict[str, dict[str, str]] = {}
    parts: list[str] = []
    for field_name in sorted(errors):
        for sub in sorted(errors[field_name]):
            name, value, parent = errors[field_name][sub]
            text = (
                f"the foreign key cannot be resolved with '{_pretty({name: value})}' for an existing '{parent}' entity"
            )
            fields.setdefault(field_name, {})[sub] = text
            parts.append(f"{field_name}.{sub}: {text}")
    if len(parts) == 1:
        message = f"foreign key unresolved ({parts[0]})"
    else:
        message = f"{len(parts)} foreign keys unresolved ({'; '.join(parts)})"
    return EntityError(Code.FOREIGN_KEYS_UNRESOLVED, message, fields, 400)


def invalid_primary_key(key: Mapping[str, Any]) -> EntityError:
    return EntityError(Code.INVALID_PRIMARY_KEY, f"invalid primary key: '{_pretty(key)}'", dict(key))


class DeclarativeConfigError(EntityError):
    """Code 14: a declarative configuration that does not validate; nothing was loaded.

    ``fields`` is Kong's nested error table (entity name -> list index -> errors, with ``None`` holes),
    ``flattened_errors`` the per-entity list that ``POST /config?flatten_errors=1`` returns, and
    ``paths`` one human-readable ``services[0].routes[1].paths[0]: ...`` line per error (0-based, for logs
    and the CLI; Kong has no such list).
    """

    def __init__(
        self, errors: Mapping[str, Any], flattened: list[dict[str, Any]] | None = None, paths: list[str] | None = None
    ) -> None:
        message = f"declarative config is invalid: {lua_pretty(dict(errors), '')}"
        super().__init__(Code.DECLARATIVE_CONFIG, message, errors, 400)
        self.flattened_errors: list[dict[str, Any]] = list(flattened or [])
        self.paths: list[str] = list(paths or [])

    def to_json(self, flatten: bool = False) -> dict[str, Any]:
        body = super().to_json()
        if flatten:
            body["flattened_errors"] = self.flattened_errors
        return body
