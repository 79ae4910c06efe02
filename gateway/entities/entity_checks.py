"""Kong's entity checks (``entity_checks`` in a schema): rules that read several fields of one entity.

Each constructor returns a ``Check``: the fields it reads, those whose absence is an error, how it reacts to
missing or invalid fields (Kong's ``run_with_missing_fields`` / ``run_with_invalid_fields``), and its message.
The schema runs them after the field validation (``Schema._run_check``); ``conditional`` and
``conditional_at_least_one_of`` validate values as one of the schema's fields through ``FieldValidator``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.entities.values import ERR, UNSET, get_path, is_nonempty, quoted_list, set_path

__all__ = [
    "Check",
    "FieldValidator",
    "at_least_one_of",
    "conditional",
    "conditional_at_least_one_of",
    "custom_check",
    "distinct",
    "mutually_exclusive",
    "mutually_required",
    "only_one_of",
]


class FieldValidator(Protocol):
    """What a check needs of its schema: validate a value as one of its fields, with some rules replaced.

    The schema satisfies it; a Protocol rather than the class, so that the checks sit below the schema.
    """

    def validate_as(self, name: str, entity: Mapping[str, Any], rules: Mapping[str, Any], value: Any) -> Any:
        """The error of ``value`` against field ``name`` (as specialised for ``entity``) with ``rules``, or None."""
        ...


CheckFn = Callable[[FieldValidator, dict[str, Any], dict[str, Any], bool], "tuple[bool, str | None, str | None]"]


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


def at_least_one_of(*names: str) -> Check:
    def fn(schema: FieldValidator, entity: dict[str, Any], errors: dict[str, Any], updating: bool) -> Any:
        if any(is_nonempty(get_path(entity, n)) for n in names):
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
    return sum(1 for n in names if is_nonempty(get_path(entity, n)))


def mutually_required(*names: str) -> Check:
    def fn(schema: FieldValidator, entity: dict[str, Any], errors: dict[str, Any], updating: bool) -> Any:
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
    def fn(schema: FieldValidator, entity: dict[str, Any], errors: dict[str, Any], updating: bool) -> Any:
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
    def fn(schema: FieldValidator, entity: dict[str, Any], errors: dict[str, Any], updating: bool) -> Any:
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
    def fn(schema: FieldValidator, entity: dict[str, Any], errors: dict[str, Any], updating: bool) -> Any:
        seen: list[Any] = []
        for n in names:
            value = get_path(entity, n)
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

    def fn(schema: FieldValidator, entity: dict[str, Any], errors: dict[str, Any], updating: bool) -> Any:
        if_value = get_path(entity, if_field)
        then_value = get_path(entity, then_field)
        if then_value is UNSET:
            then_value = None
        if schema.validate_as(if_field, entity, if_match, None if if_value is UNSET else if_value) is not None:
            return True, None, None
        if then_match.get("required") is True and then_value is None:
            set_path(errors, then_field, ERR["REQUIRED"])
            return False, if_field, None
        err = schema.validate_as(then_field, entity, then_match, then_value)
        if err is not None:
            set_path(errors, then_field, err)
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

    def fn(schema: FieldValidator, entity: dict[str, Any], errors: dict[str, Any], updating: bool) -> Any:
        if_value = get_path(entity, if_field)
        if if_value is UNSET:
            return True, None, None
        if schema.validate_as(if_field, entity, if_match, if_value) is not None:
            if else_match is None:
                return True, None, None
            if schema.validate_as(if_field, entity, else_match, if_value) is not None:
                return True, None, None
            names, custom = else_then_at_least_one_of, else_then_err
        else:
            names, custom = then_at_least_one_of, then_err
        if any(is_nonempty(get_path(entity, n)) for n in names):
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

    def run(schema: FieldValidator, entity: dict[str, Any], errors: dict[str, Any], updating: bool) -> Any:
        err = fn(entity)
        return (True, None, None) if err is None else (False, err, None)

    names = tuple(field_sources)
    return Check("custom_entity_check", names, frozenset(names), run, None, run_with_missing=run_with_missing)
