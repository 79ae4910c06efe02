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

Values are JSON-shaped Python: ``str``, ``int``/``float`` (``bool`` is never a number), ``bool``,
``list``, ``dict``, ``None``.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
import time
import uuid as uuid_mod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.entities.errors import schema_violation

__all__ = [
    "NULL",
    "UNSET",
    "Check",
    "Field",
    "Schema",
    "Subschema",
    "at_least_one_of",
    "conditional",
    "conditional_at_least_one_of",
    "custom_check",
    "distinct",
    "is_nonempty",
    "is_uuid",
    "mutually_exclusive",
    "mutually_required",
    "only_one_of",
    "quoted_list",
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


def _fmt_num(value: Any) -> str:
    """Numbers as Lua's ``%d``/``tostring`` print them in messages (``2147483646``, not ``2147483646.0``)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_integer(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and math.isfinite(value) and value.is_integer()


def _length(value: Any) -> int:
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    return len(value)


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


# ------------------------------------------------------------------------------------------- checks
CheckFn = Callable[["Schema", dict[str, Any], dict[str, Any], bool], "tuple[bool, str | None, str | None]"]


@dataclass(frozen=True, slots=True)
class Check:
    """One entity check. ``fn(schema, projection, errors, updating) -> (ok, err, custom_err)``.

    ``err`` is formatted with ``message`` (Kong's ``validation_errors[NAME]``); ``custom_err`` replaces it
    (a ``then_err`` / ``else_then_err``). ``fields`` are the fields the check reads (Kong's
    ``field_sources``); ``required`` those whose absence turns into "field required for entity check".
    """

    name: str
    fields: tuple[str, ...]
    required: frozenset[str]
    fn: CheckFn
    message: str | None = None
    update_message: str | None = None
    run_with_missing: bool = False
    run_with_invalid: bool = False


def _get(entity: Mapping[str, Any] | None, name: str) -> Any:
    """``get_field`` with dotted names; returns ``UNSET`` when absent."""
    if not isinstance(entity, Mapping):
        return UNSET
    head, dot, tail = name.partition(".")
    if not dot:
        return entity.get(head, UNSET)
    return _get(entity.get(head), tail)


def _set(entity: dict[str, Any], name: str, value: Any) -> None:
    head, dot, tail = name.partition(".")
    if not dot:
        entity[head] = value
        return
    sub = entity.setdefault(head, {})
    _set(sub, tail, value)


def at_least_one_of(*names: str) -> Check:
    def fn(schema: Schema, entity: dict[str, Any], errors: dict[str, Any], updating: bool) -> Any:
        if any(is_nonempty(_get(entity, n)) for n in names):
            return True, None, None
        return False, quoted_list(names), None

    return Check(
        "at_least_one_of",
        names,
        frozenset(names),
        fn,
        "at least one of these fields must be non-empty: {}",
        "when updating, at least one of these fields must be non-empty: {}",
        run_with_missing=True,
        run_with_invalid=True,
    )


def _count_nonempty(entity: dict[str, Any], names: Sequence[str]) -> int:
    return sum(1 for n in names if is_nonempty(_get(entity, n)))


def mutually_required(*names: str) -> Check:
    def fn(schema: Schema, entity: dict[str, Any], errors: dict[str, Any], updating: bool) -> Any:
        n = _count_nonempty(entity, names)
        if n in (0, len(names)):
            return True, None, None
        return False, quoted_list(names), None

    return Check(
        "mutually_required",
        names,
        frozenset(names),
        fn,
        "all or none of these fields must be set: {}",
        run_with_missing=True,
    )


def mutually_exclusive(*names: str) -> Check:
    def fn(schema: Schema, entity: dict[str, Any], errors: dict[str, Any], updating: bool) -> Any:
        if _count_nonempty(entity, names) <= 1:
            return True, None, None
        return False, quoted_list(names), None

    return Check(
        "mutually_exclusive",
        names,
        frozenset(names),
        fn,
        "only one or none of these fields must be set: {}",
        run_with_missing=True,
    )


def only_one_of(*names: str) -> Check:
    def fn(schema: Schema, entity: dict[str, Any], errors: dict[str, Any], updating: bool) -> Any:
        if _count_nonempty(entity, names) == 1:
            return True, None, None
        return False, quoted_list(names), None

    return Check(
        "only_one_of",
        names,
        frozenset(names),
        fn,
        "exactly one of these fields must be non-empty: {}",
        run_with_invalid=True,
    )


def distinct(*names: str) -> Check:
    def fn(schema: Schema, entity: dict[str, Any], errors: dict[str, Any], updating: bool) -> Any:
        seen: list[Any] = []
        for n in names:
            value = _get(entity, n)
            if is_nonempty(value):
                if value in seen:
                    return False, quoted_list(names), None
                seen.append(value)
        return True, None, None

    return Check(
        "distinct", names, frozenset(names), fn, "values of these fields must be distinct: {}", run_with_invalid=True
    )


def conditional(
    if_field: str,
    if_match: Mapping[str, Any],
    then_field: str,
    then_match: Mapping[str, Any],
    then_err: str | None = None,
) -> Check:
    """If ``if_field`` passes ``if_match``, ``then_field`` must pass ``then_match``.

    Both matches inherit the definition of the field they test (Kong sets the field as their metatable),
    so ``{"one_of": (...)}`` on a string field is still a string check.
    """

    def fn(schema: Schema, entity: dict[str, Any], errors: dict[str, Any], updating: bool) -> Any:
        if_value = _get(entity, if_field)
        then_value = _get(entity, then_field)
        if then_value is UNSET:
            then_value = None
        if_def = schema.lookup_field(if_field, entity)(**if_match)
        if schema.validate_field(if_def, None if if_value is UNSET else if_value) is not None:
            return True, None, None
        if then_match.get("required") is True and then_value is None:
            _set(errors, then_field, ERR["REQUIRED"])
            return False, if_field, None
        then_def = schema.lookup_field(then_field, entity)(**then_match)
        err = schema.validate_field(then_def, then_value)
        if err is not None:
            _set(errors, then_field, err)
            return False, if_field, then_err.replace("%s", if_field) if then_err else None
        return True, None, None

    return Check(
        "conditional",
        (if_field, then_field),
        frozenset({if_field}),
        fn,
        "failed conditional validation given value of field '{}'",
        run_with_invalid=True,
    )


def conditional_at_least_one_of(
    if_field: str,
    if_match: Mapping[str, Any],
    then_at_least_one_of: Sequence[str],
    then_err: str | None = None,
    else_match: Mapping[str, Any] | None = None,
    else_then_at_least_one_of: Sequence[str] = (),
    else_then_err: str | None = None,
) -> Check:
    """Kong's ``conditional_at_least_one_of`` (used by the route subschemas)."""

    def fn(schema: Schema, entity: dict[str, Any], errors: dict[str, Any], updating: bool) -> Any:
        if_value = _get(entity, if_field)
        if if_value is UNSET:
            return True, None, None
        base = schema.lookup_field(if_field, entity)
        if schema.validate_field(base(**if_match), if_value) is not None:
            if else_match is None:
                return True, None, None
            if schema.validate_field(base(**else_match), if_value) is not None:
                return True, None, None
            names, custom = else_then_at_least_one_of, else_then_err
        else:
            names, custom = then_at_least_one_of, then_err
        if any(is_nonempty(_get(entity, n)) for n in names):
            return True, None, None
        listed = quoted_list(names)
        return False, listed, custom.replace("%s", listed) if custom else None

    sources = (if_field, *then_at_least_one_of, *else_then_at_least_one_of)
    return Check(
        "conditional_at_least_one_of",
        tuple(dict.fromkeys(sources)),
        frozenset(),
        fn,
        "at least one of these fields must be non-empty: {}",
        "when updating, at least one of these fields must be non-empty: {}",
        run_with_missing=True,
        run_with_invalid=True,
    )


def custom_check(
    field_sources: Sequence[str], fn: Callable[[dict[str, Any]], str | None], run_with_missing: bool = False
) -> Check:
    """Kong's ``custom_entity_check``: ``fn(projection)`` returns an error message or None.

    It does not run when any of its fields is invalid or (unless ``run_with_missing``) absent.
    """

    def run(schema: Schema, entity: dict[str, Any], errors: dict[str, Any], updating: bool) -> Any:
        err = fn(entity)
        return (True, None, None) if err is None else (False, err, None)

    names = tuple(field_sources)
    return Check("custom_entity_check", names, frozenset(names), run, None, run_with_missing=run_with_missing)


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
    def process_auto_fields(self, data: Mapping[str, Any], context: str, now: float | None = None) -> dict[str, Any]:  # noqa: C901 (older than the rule; issue 12 splits it)
        """Copy ``data`` and apply shorthands, auto fields and (unless ``context == "update"``) defaults.

        ``context`` is ``insert``, ``upsert`` or ``update``. Raises ``schema_violation`` when a shorthand
        value itself is invalid (Kong validates it before expanding it).
        """
        out = copy.deepcopy(dict(data))
        if self.shorthand_fields:
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
        stamp = time.time() if now is None else now
        creating = context in ("insert", "upsert")
        for name, f in self.each_field(out):
            present = name in out
            value = out.get(name)
            if f.auto:
                if f.uuid:
                    if creating and not present:
                        out[name] = str(uuid_mod.uuid4())
                        continue
                elif (name == "created_at" and creating and value is None) or (
                    name == "updated_at" and context in ("insert", "upsert", "update")
                ):
                    out[name] = round(stamp, 3) if f.type == "number" else int(stamp)
                    continue
            if present:
                out[name] = self._adjust(f, value, context)
            elif context != "update":
                missing = self._missing(f)
                if missing is not UNSET:
                    out[name] = missing
        return out

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
            value = _get(data, fname)
            if value is UNSET:
                if not check.run_with_missing and fname in check.required:
                    missing.append(fname)
            else:
                all_nil = False
                _set(projection, fname, copy.deepcopy(value))
            if fname in errors:
                all_ok = False
        if not all_ok and not check.run_with_invalid:
            return
        if all_nil and not (check.run_with_missing and full_check):
            return
        if missing:
            msg = ERR["REQUIRED_FOR_ENTITY_CHECK"] + (" when updating" if updating else "")
            for fname in missing:
                _set(errors, fname, msg)
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

    def validate_field(self, f: Field, value: Any) -> Any:  # noqa: C901 (older than the rule; issue 12 splits it)
        """Kong's ``Schema:validate_field``: None when ``value`` is valid, else its error (str, list or dict)."""
        if value is None:
            if f.ne is NULL:
                return f.err or "value must not be null"
            if f.eq is not UNSET and f.eq is not NULL:
                return f"value must be {_fmt_num(f.eq)}"
            if f.required:
                return ERR["REQUIRED"]
            return None
        if f.eq is NULL:
            return f.err or "value must be null"
        t = f.type
        if t in ("array", "set"):
            if not isinstance(value, list):
                return ERR["ARRAY"] if t == "array" else ERR["SET"]
            assert f.elements is not None
            element = f.elements(required=True)
            errs: list[Any] = [self.validate_field(element, item) for item in value]
            if any(e is not None for e in errs):
                while errs and errs[-1] is None:
                    errs.pop()
                return errs
        elif t == "map":
            if not isinstance(value, dict):
                return ERR["MAP"]
            kdef = (f.keys or Field("string"))(required=True)
            vdef = (f.values or Field("any"))(required=True)
            for k, v in value.items():
                err = self.validate_field(kdef, k)
                if err is None:
                    err = self.validate_field(vdef, v)
                if err is not None:
                    return err
        elif t == "record":
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
        elif t == "foreign":
            if not isinstance(value, dict):
                return {"id": ERR["MISSING_PK"]}
            if "id" not in value:
                return {"id": ERR["MISSING_PK"]}
            if value["id"] is None:
                return {"id": ERR["REQUIRED"]}
            if not isinstance(value["id"], str):
                return {"id": ERR["STRING"]}
            if not is_uuid(value["id"]):
                return {"id": "expected a valid UUID"}
            return None
        elif t == "integer":
            if not _is_integer(value):
                return ERR["INTEGER"]
        elif t == "number":
            if not _is_number(value) or (isinstance(value, float) and math.isnan(value)):
                return ERR["NUMBER"]
        elif t == "string":
            if not isinstance(value, str):
                return ERR["STRING"]
            if f.len_min is None:
                f = f(len_min=1)
        elif t == "boolean":
            if not isinstance(value, bool):
                return ERR["BOOLEAN"]
        elif t != "any":
            return f"invalid type: {t}"
        err = _run_validators(f, value)
        if err is not None:
            return f.err or err
        return None

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


def _run_validators(f: Field, value: Any) -> str | None:  # noqa: C901 (older than the rule; issue 12 splits it)
    """The validators of one field, in Kong's ``validators_order``; the first failure wins."""
    if f.eq is not UNSET and f.eq is not NULL and value != f.eq:
        return f"value must be {_fmt_num(f.eq)}"
    if f.ne is not UNSET and f.ne is not NULL and value == f.ne:
        return f"value must not be {_fmt_num(value)}"
    if f.not_one_of is not None and value in f.not_one_of:
        return "must not be one of: " + ", ".join(_fmt_num(o) for o in f.not_one_of)
    if f.one_of is not None and value not in f.one_of:
        return "expected one of: " + ", ".join(_fmt_num(o) for o in f.one_of)
    if f.gt is not None and not value > f.gt:
        return f"value must be greater than {_fmt_num(f.gt)}"
    if f.timestamp and not value > 0:
        return "expected a valid timestamp"
    if f.uuid and not is_uuid(value):
        return "expected a valid UUID"
    if f.between is not None and (value < f.between[0] or value > f.between[1]):
        return f"value should be between {int(f.between[0])} and {int(f.between[1])}"
    if f.len_eq is not None and _length(value) != f.len_eq:
        return f"length must be {f.len_eq}"
    if f.len_min is not None and _length(value) < f.len_min:
        return f"length must be at least {f.len_min}"
    if f.len_max is not None and _length(value) > f.len_max:
        return f"length must be at most {f.len_max}"
    if f.starts_with is not None and not value.startswith(f.starts_with):
        return f"should start with: {f.starts_with}"
    if f.not_match is not None and re.search(f.not_match, value):
        return f"invalid value: {value}"
    for pattern, err in f.match_none:
        if re.search(pattern, value):
            return err
    if f.match is not None and not re.search(f.match, value):
        return f"invalid value: {value}"
    for pattern, err in f.match_all:
        if not re.search(pattern, value):
            return err
    if f.match_any is not None:
        patterns, err = f.match_any
        if not any(re.search(p, value) for p in patterns):
            return err
    if f.contains is not UNSET and f.contains not in value:
        return f"expected to contain: {f.contains}"
    if f.custom_validator is not None:
        custom_err = f.custom_validator(value)
        if custom_err is not None:
            return custom_err
    if f.mutually_exclusive_subsets is not None:
        member_of: list[tuple[str, ...]] = []
        for item in value:
            for subset in f.mutually_exclusive_subsets:
                if item in subset and subset not in member_of:
                    member_of.append(subset)
        if len(member_of) > 1:
            return "these sets are mutually exclusive: " + quoted_list([list(s) for s in member_of])
    return None
