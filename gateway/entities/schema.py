"""A small declarative schema framework with Kong's semantics (``kong/db/schema/init.lua``).

Theory of operation
-------------------
An entity is described as data: an ordered list of named ``Field`` values (built from reusable typedefs,
see ``typedefs.py``), cross-field ``entity_checks``, ``shorthand_fields`` and optional subschemas. The
framework gives every entity the same three steps that Kong's DAO runs:

1. ``process_auto_fields(data, context)`` copies the input, expands shorthands (service ``url``), fills
   ``id``/``created_at``/``updated_at`` and, except on update, the defaults (missing optional fields become
   ``None``, i.e. JSON null), and removes duplicates from sets.
2. ``validate(data, full_check)`` returns Kong's nested error table: ``{"field": "msg"}``, per-element
   errors of arrays as lists with ``None`` holes, record errors as dicts, and cross-field messages under
   ``"@entity"``. An empty dict means valid.
3. ``complete(row)`` makes a stored row total: every non-transient field present (defaults or ``None``).

Rules kept from Kong because tests and clients depend on them:

- ``None`` (null) and *absent* are different: a required field sent as null always fails, an absent one
  fails only on a full check (insert/upsert); an update is validated as the merge of the stored row and the
  patch with ``full_check=False``.
- Validators run in Kong's fixed order and the first failure wins; strings default to ``len_min = 1``;
  ``field.err`` replaces a validator's message; string lengths count UTF-8 bytes, as Lua's ``#`` does.
- Entity checks skip themselves when their fields are missing or already invalid, exactly per checker
  (``run_with_missing_fields`` / ``run_with_invalid_fields``), and ``conditional`` matches inherit the
  definition of the field they test.

The framework is four modules: ``values.py`` (absent vs null, type predicates, messages), ``validators.py``
(Kong's validators as a table, in Kong's order), ``entity_checks.py`` (the cross-field checks) and this one
(``Field``, ``Schema`` and the three steps, with the type checks as a table).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
import uuid as uuid_mod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.entities.entity_checks import Check
from gateway.entities.errors import schema_violation
from gateway.entities.validators import run_validators
from gateway.entities.values import ERR, NULL, UNSET, fmt_num, get_path, is_integer, is_number, is_uuid, set_path

__all__ = ["Field", "Schema", "Subschema"]


Validator = Callable[[Any], "str | None"]
"""A custom validator: returns an error message, or None when the value is fine."""


@dataclass(frozen=True, slots=True)
class Field:
    """One field definition. Calling a field returns a copy with some attributes replaced (Kong's typedefs)."""

    type: str
    required: bool = False
    default: Any = UNSET
    description: str = ""
    # aggregates
    elements: Field | None = None
    keys: Field | None = None
    values: Field | None = None
    record: Schema | None = None
    # relations and storage
    reference: str | None = None
    on_delete: str | None = None  # "cascade" or None (restrict)
    unique: bool = False
    auto: bool = False
    uuid: bool = False
    timestamp: bool = False
    transient: bool = False
    referenceable: bool = False
    # validators, applied in Kong's order
    eq: Any = UNSET
    ne: Any = UNSET
    not_one_of: tuple[Any, ...] | None = None
    one_of: tuple[Any, ...] | None = None
    gt: float | None = None
    between: tuple[float, float] | None = None
    len_eq: int | None = None
    len_min: int | None = None
    len_max: int | None = None
    starts_with: str | None = None
    not_match: str | None = None
    match_none: tuple[tuple[str, str], ...] = ()
    match: str | None = None
    match_all: tuple[tuple[str, str], ...] = ()
    match_any: tuple[tuple[str, ...], str] | None = None
    contains: Any = UNSET
    custom_validator: Validator | None = None
    mutually_exclusive_subsets: tuple[tuple[str, ...], ...] | None = None
    err: str | None = None

    def __call__(self, **changes: Any) -> Field:
        return dataclasses.replace(self, **changes)

    def has_default(self) -> bool:
        return self.default is not UNSET

    def default_value(self) -> Any:
        if self.default is NULL:
            return None
        return copy.deepcopy(self.default)


# ------------------------------------------------------------------------------------------- schema
@dataclass(frozen=True, slots=True)
class Subschema:
    """Field overrides and extra checks selected by the value of the schema's ``subschema_key``."""

    name: str
    fields: Mapping[str, Field] = field(default_factory=dict)
    entity_checks: tuple[Check, ...] = ()


ShorthandFn = Callable[[Any], "dict[str, Any] | None"]


@dataclass(slots=True)
class Schema:
    """An entity (or record) definition. See the module docstring for the three steps it provides."""

    name: str
    fields: list[tuple[str, Field]]
    endpoint_key: str | None = None
    entity_checks: tuple[Check, ...] = ()
    shorthand_fields: tuple[tuple[str, Field, ShorthandFn], ...] = ()
    subschema_key: str | None = None
    subschema_resolver: Callable[[Mapping[str, Any]], Subschema | None] | None = None
    subschema_error: str | Callable[[str], str] | None = None
    """Kong's ``subschema_error``: a ``%s`` format of the unknown key, or a function of it."""
    cache_key: tuple[str, ...] = ()
    description: str = ""
    _by_name: dict[str, Field] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._by_name = dict(self.fields)

    # ---------------------------------------------------------------- lookups
    def get_field(self, name: str) -> Field | None:
        return self._by_name.get(name)

    def subschema(self, data: Mapping[str, Any]) -> Subschema | None:
        if self.subschema_resolver is None or not isinstance(data, Mapping):
            return None
        return self.subschema_resolver(data)

    def each_field(self, data: Mapping[str, Any] | None = None) -> Iterator[tuple[str, Field]]:
        """Fields in schema order; with ``data``, subschema overrides replace the base definitions."""
        sub = self.subschema(data) if data is not None else None
        for name, f in self.fields:
            if sub is not None and name in sub.fields:
                yield name, sub.fields[name]
            else:
                yield name, f

    def lookup_field(self, name: str, data: Mapping[str, Any] | None = None) -> Field:
        """The (possibly subschema-specialised, possibly dotted) definition of ``name``."""
        head, dot, tail = name.partition(".")
        sub = self.subschema(data) if data is not None else None
        f = sub.fields.get(head) if sub is not None else None
        f = f or self._by_name[head]
        if dot:
            assert f.record is not None
            return f.record.lookup_field(tail)
        return f

    @property
    def unique_fields(self) -> list[str]:
        return [n for n, f in self.fields if f.unique]

    @property
    def foreign_fields(self) -> list[tuple[str, Field]]:
        return [(n, f) for n, f in self.fields if f.type == "foreign"]

    # ---------------------------------------------------------------- step 1: auto fields
    def process_auto_fields(self, data: Mapping[str, Any], context: str, now: float | None = None) -> dict[str, Any]:
        """Copy ``data`` and apply shorthands, auto fields and (unless ``context == "update"``) defaults.

        ``context`` is ``insert``, ``upsert`` or ``update``. Raises ``schema_violation`` when a shorthand
        value itself is invalid (Kong validates it before expanding it).
        """
        out = copy.deepcopy(dict(data))
        if self.shorthand_fields:
            self._expand_shorthands(out)
        stamp = time.time() if now is None else now
        for name, f in self.each_field(out):
            if f.auto and _fill_auto(out, name, f, context, stamp):
                continue
            if name in out:
                out[name] = self._adjust(f, out[name], context)
            elif context != "update":
                missing = self._missing(f)
                if missing is not UNSET:
                    out[name] = missing
        return out

    def _expand_shorthands(self, out: dict[str, Any]) -> None:
        """Replace each shorthand field of ``out`` by what it expands to (records merged into records)."""
        errs: dict[str, Any] = {}
        for sname, sfield, func in self.shorthand_fields:
            if sname not in out:
                continue
            value = out[sname]
            err = self.validate_field(sfield, value)
            if err is not None:
                errs[sname] = err
                continue
            del out[sname]
            expanded = func(value)
            for k, v in (expanded or {}).items():
                if isinstance(v, dict) and isinstance(out.get(k), dict):
                    out[k] = {**out[k], **v}
                else:
                    out[k] = v
        if errs:
            raise schema_violation(errs)

    def _missing(self, f: Field) -> Any:
        """Kong's ``handle_missing_field``: default, else null when optional, else a record's defaults."""
        if f.has_default():
            return f.default_value()
        if not f.required:
            return None
        if f.type == "record" and f.record is not None:
            return f.record.process_auto_fields({}, "insert")
        return UNSET

    def _adjust(self, f: Field, value: Any, context: str) -> Any:
        if value is None:
            return None
        if f.type == "record" and f.record is not None and isinstance(value, dict):
            return f.record.process_auto_fields(value, context)
        if isinstance(value, list) and f.type in ("array", "set") and f.elements is not None:
            if f.type == "set":
                deduped: list[Any] = []
                for item in value:
                    if item not in deduped:
                        deduped.append(item)
                value = deduped
            return [self._adjust(f.elements, item, context) for item in value]
        if isinstance(value, dict) and f.type == "map" and f.values is not None:
            return {k: self._adjust(f.values, v, context) for k, v in value.items()}
        return value

    # ---------------------------------------------------------------- step 2: validation
    def validate(self, data: Mapping[str, Any], full_check: bool = True, updating: bool = False) -> dict[str, Any]:
        """Kong's ``Schema:validate``: the nested error table, empty when ``data`` is valid."""
        if self.subschema_key and self.subschema_error is not None:
            key = data.get(self.subschema_key)
            if key is None:
                return {self.subschema_key: ERR["REQUIRED"]}
            if self.subschema(data) is None:
                shown = str(key if isinstance(key, str) else (key[0] if isinstance(key, list) and key else key))
                if callable(self.subschema_error):
                    return {self.subschema_key: self.subschema_error(shown)}
                return {self.subschema_key: self.subschema_error.replace("%s", shown)}
        errors: dict[str, Any] = {}
        sub = self.subschema(data)
        for k, v in data.items():
            f = sub.fields.get(k) if sub is not None else None
            f = f or self._by_name.get(k)
            if f is None:
                errors[k] = ERR["UNKNOWN"]
                continue
            err = self.validate_field(f, v)
            if err is not None:
                errors[k] = err
        for name, f in self.fields:
            if f.required and ((name in data and data[name] is None) or (full_check and name not in data)):
                errors[name] = ERR["REQUIRED"]
        for check in self.entity_checks:
            self._run_check(check, data, full_check, updating, errors)
        if sub is not None:
            for check in sub.entity_checks:
                self._run_check(check, data, full_check, updating, errors)
        return errors

    def _run_check(
        self, check: Check, data: Mapping[str, Any], full_check: bool, updating: bool, errors: dict[str, Any]
    ) -> None:
        projection: dict[str, Any] = {}
        missing: list[str] = []
        all_nil = True
        all_ok = True
        for fname in check.fields:
            value = get_path(data, fname)
            if value is UNSET:
                if not check.run_with_missing and fname in check.required:
                    missing.append(fname)
            else:
                all_nil = False
                set_path(projection, fname, copy.deepcopy(value))
            if fname in errors:
                all_ok = False
        if not all_ok and not check.run_with_invalid:
            return
        if all_nil and not (check.run_with_missing and full_check):
            return
        if missing:
            msg = ERR["REQUIRED_FOR_ENTITY_CHECK"] + (" when updating" if updating else "")
            for fname in missing:
                set_path(errors, fname, msg)
            return
        ok, err, custom = check.fn(self, projection, errors, updating)
        if ok:
            return
        if custom is not None:
            message = custom
        else:
            fmt = check.update_message if (updating and check.update_message) else check.message
            message = fmt.format(err) if fmt else str(err)
        errors.setdefault("@entity", []).append(message)

    def validate_field(self, f: Field, value: Any) -> Any:
        """Kong's ``Schema:validate_field``: None when ``value`` is valid, else its error (str, list or dict).

        Null first, then the type (``_TYPE_CHECKS``, which also validates the elements of aggregates), then
        the field's validators in Kong's order.
        """
        if value is None:
            return _null_error(f)
        if f.eq is NULL:
            return f.err or "value must be null"
        check = _TYPE_CHECKS.get(f.type)
        if check is None:
            return f"invalid type: {f.type}"
        err = check(self, f, value)
        if err is _VALID:
            return None
        if err is not None:
            return err
        if f.type == "string" and f.len_min is None:
            f = f(len_min=1)  # strings default to len_min = 1
        err = run_validators(f, value)
        if err is not None:
            return f.err or err
        return None

    def validate_as(self, name: str, entity: Mapping[str, Any], rules: Mapping[str, Any], value: Any) -> Any:
        """``value`` validated as field ``name`` of ``entity`` with ``rules`` replacing its own (the entity checks)."""
        return self.validate_field(self.lookup_field(name, entity)(**rules), value)

    # ---------------------------------------------------------------- step 3: complete rows
    def complete(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """Every non-transient field present, in schema order; missing ones get their default or None.

        Kong's ``select`` with ``nulls = true`` (what the Admin API returns) does the same, recursively for
        records; unknown keys are dropped.
        """
        out: dict[str, Any] = {}
        for name, f in self.each_field(row):
            if f.transient:
                continue
            value = row[name] if name in row else (f.default_value() if f.has_default() else None)
            if f.type == "record" and f.record is not None and isinstance(value, dict):
                value = f.record.complete(value)
            elif f.type in ("array", "set") and isinstance(value, list) and f.elements is not None:
                rec = f.elements.record
                if f.elements.type == "record" and rec is not None:
                    value = [rec.complete(v) if isinstance(v, dict) else v for v in value]
            out[name] = value
        return out


def _fill_auto(out: dict[str, Any], name: str, f: Field, context: str, stamp: float) -> bool:
    """Set an ``auto`` field that Kong generates in this ``context`` (id, timestamps); False when it does not."""
    creating = context in ("insert", "upsert")
    if f.uuid:
        if creating and name not in out:
            out[name] = str(uuid_mod.uuid4())
            return True
        return False
    if (name == "created_at" and creating and out.get(name) is None) or (
        name == "updated_at" and context in ("insert", "upsert", "update")
    ):
        out[name] = round(stamp, 3) if f.type == "number" else int(stamp)
        return True
    return False


def _null_error(f: Field) -> str | None:
    """The error of a null value: only a required field, or an ``eq`` / ``ne`` rule, refuses null."""
    if f.ne is NULL:
        return f.err or "value must not be null"
    if f.eq is not UNSET and f.eq is not NULL:
        return f"value must be {fmt_num(f.eq)}"
    if f.required:
        return ERR["REQUIRED"]
    return None


#: a type check's answer for "valid, and the field's validators do not apply" (a foreign key)
_VALID: Any = object()

#: ``(schema, field, value) -> error``: None when the type is right (the validators run next), ``_VALID``, or the
#: error; aggregates validate their elements here
TypeCheck = Callable[["Schema", Field, Any], Any]


def _check_list(schema: Schema, f: Field, value: Any) -> Any:
    if not isinstance(value, list):
        return ERR["ARRAY"] if f.type == "array" else ERR["SET"]
    assert f.elements is not None
    element = f.elements(required=True)
    errs: list[Any] = [schema.validate_field(element, item) for item in value]
    if any(e is not None for e in errs):
        while errs and errs[-1] is None:
            errs.pop()
        return errs
    return None


def _check_map(schema: Schema, f: Field, value: Any) -> Any:
    if not isinstance(value, dict):
        return ERR["MAP"]
    kdef = (f.keys or Field("string"))(required=True)
    vdef = (f.values or Field("any"))(required=True)
    for k, v in value.items():
        err = schema.validate_field(kdef, k)
        if err is None:
            err = schema.validate_field(vdef, v)
        if err is not None:
            return err
    return None


def _check_record(schema: Schema, f: Field, value: Any) -> Any:
    if not isinstance(value, dict):
        return ERR["RECORD"]
    if f.record is not None:
        try:
            processed = f.record.process_auto_fields(value, "insert")
        except Exception as exc:  # a shorthand error inside a record
            return getattr(exc, "fields", None) or str(exc)
        rec_errors = f.record.validate(processed)
        if rec_errors:
            return rec_errors
    return None


def _check_foreign(schema: Schema, f: Field, value: Any) -> Any:
    if not isinstance(value, dict) or "id" not in value:
        return {"id": ERR["MISSING_PK"]}
    key = value["id"]
    if key is None:
        return {"id": ERR["REQUIRED"]}
    if not isinstance(key, str):
        return {"id": ERR["STRING"]}
    if not is_uuid(key):
        return {"id": "expected a valid UUID"}
    return _VALID


def _check_integer(schema: Schema, f: Field, value: Any) -> Any:
    return None if is_integer(value) else ERR["INTEGER"]


def _check_number(schema: Schema, f: Field, value: Any) -> Any:
    if not is_number(value) or (isinstance(value, float) and math.isnan(value)):
        return ERR["NUMBER"]
    return None


def _check_string(schema: Schema, f: Field, value: Any) -> Any:
    return None if isinstance(value, str) else ERR["STRING"]


def _check_boolean(schema: Schema, f: Field, value: Any) -> Any:
    return None if isinstance(value, bool) else ERR["BOOLEAN"]


def _check_any(schema: Schema, f: Field, value: Any) -> Any:
    return None


_TYPE_CHECKS: dict[str, TypeCheck] = {
    "array": _check_list,
    "set": _check_list,
    "map": _check_map,
    "record": _check_record,
    "foreign": _check_foreign,
    "integer": _check_integer,
    "number": _check_number,
    "string": _check_string,
    "boolean": _check_boolean,
    "any": _check_any,
}
