"""Type inference for form-encoded Admin API bodies (Kong's ``kong/api/arguments.lua`` ``infer_value``).

Form-urlencoded and multipart bodies only carry strings. The Admin API parser first builds the nesting
(``client_certificate.id=x`` -> ``{"client_certificate": {"id": "x"}}``, ``snis[]=a&snis[]=b`` and
repeated keys -> lists); ``coerce_form`` then converts each leaf by the type the schema declares:

- ``""`` becomes null (a form's only way to clear a field);
- integers and numbers: parsed when they parse (``"8443"`` -> 8443, ``"1.5"`` -> 1.5), else left as the
  string so validation reports Kong's ``expected an integer``;
- booleans: exactly ``"true"``/``"false"``, anything else left as is;
- arrays and sets: a single string becomes a one-element list; a dict keyed by indexes (``snis[2]``)
  becomes a list in index order; elements are inferred in turn;
- records, foreign keys and maps recurse; a plugin's ``config`` uses the plugin's config schema when the
  plugin is known, and fields the schema does not know are left untouched.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from gateway.entities import SCHEMAS
from gateway.entities.plugin_configs import get_plugin
from gateway.entities.schema import Field, Schema

__all__ = ["coerce_form", "infer_value"]


def _to_number(value: str) -> int | float | None:
    text = value.strip()
    try:
        if re.fullmatch(r"[+-]?0[xX][0-9a-fA-F]+", text):
            return int(text, 16)
        if re.fullmatch(r"[+-]?\d+", text):
            return int(text)
        number = float(text)
    except ValueError:
        return None
    if not math.isfinite(number):
        return None
    return int(number) if number.is_integer() and "e" not in text.lower() and "." not in text else number


def _as_list(value: Any) -> Any:
    if isinstance(value, list):
        return list(value)
    if isinstance(value, Mapping) and value and all(re.fullmatch(r"\d+", str(k)) for k in value):
        return [value[k] for k in sorted(value, key=lambda k: int(k))]
    if isinstance(value, str):
        return [value]
    return value


def infer_value(value: Any, f: Field | None) -> Any:
    """One value converted by the field's declared type (see the module docstring)."""
    if f is None or value is None:
        return value
    if value == "":
        return None
    t = f.type
    if t in ("integer", "number"):
        if isinstance(value, str):
            number = _to_number(value)
            return value if number is None else number
        return value
    if t == "boolean":
        return {"true": True, "false": False}.get(value, value) if isinstance(value, str) else value
    if t in ("array", "set"):
        value = _as_list(value)
        if isinstance(value, list):
            return [infer_value(item, f.elements) for item in value]
        return value
    if t == "foreign":
        if isinstance(value, Mapping):
            return {k: (v if v != "" else None) for k, v in value.items()}
        return value
    if t == "map":
        if isinstance(value, Mapping):
            return {k: infer_value(v, f.values) for k, v in value.items()}
        return value
    if t == "record" and f.record is not None and isinstance(value, Mapping):
        return _infer_record(f.record, value)
    return value


def _infer_record(schema: Schema, data: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    sub = schema.subschema(data)
    shorthands = {name: f for name, f, _ in schema.shorthand_fields}
    for key, value in data.items():
        f = (sub.fields.get(key) if sub is not None else None) or schema.get_field(key) or shorthands.get(key)
        out[key] = infer_value(value, f)
    return out


def coerce_form(entity: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` (nested dicts/lists of strings from a form body) converted to ``entity``'s field types.

    Raises ``KeyError`` for an unknown entity name.
    """
    schema = SCHEMAS[entity]
    # the subschema (route protocols, plugin name) must be chosen from inferred values
    first = _infer_record(schema, {k: v for k, v in data.items() if k == schema.subschema_key})
    merged = {**data, **first}
    out = _infer_record(schema, merged)
    if entity == "plugins":
        spec = get_plugin(out.get("name"))
        config = data.get("config")
        if spec is not None and isinstance(config, Mapping):
            out["config"] = _infer_record(spec.config, config)
    return out
