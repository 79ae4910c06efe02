"""Kong's field validators, in Kong's ``validators_order``, as a table: the first failure wins.

Each validator is ``(rule, value) -> message | None`` where ``rule`` is the field's attribute of the same name;
``run_validators`` skips a rule still at its "not given" value. One function per rule keeps each message next
to its test, and the order is the table's, not an if-chain's (``kong/db/schema/init.lua``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from gateway.entities.values import NULL, UNSET, fmt_num, is_uuid, length, quoted_list

__all__ = ["VALIDATORS", "run_validators"]

Rule = Callable[[Any, Any], "str | None"]


def _eq(rule: Any, value: Any) -> str | None:
    return None if rule is NULL or value == rule else f"value must be {fmt_num(rule)}"


def _ne(rule: Any, value: Any) -> str | None:
    return None if rule is NULL or value != rule else f"value must not be {fmt_num(value)}"


def _not_one_of(rule: tuple[Any, ...], value: Any) -> str | None:
    return "must not be one of: " + ", ".join(fmt_num(o) for o in rule) if value in rule else None


def _one_of(rule: tuple[Any, ...], value: Any) -> str | None:
    return None if value in rule else "expected one of: " + ", ".join(fmt_num(o) for o in rule)


def _gt(rule: float, value: Any) -> str | None:
    return None if value > rule else f"value must be greater than {fmt_num(rule)}"


def _timestamp(rule: bool, value: Any) -> str | None:
    return None if value > 0 else "expected a valid timestamp"


def _uuid(rule: bool, value: Any) -> str | None:
    return None if is_uuid(value) else "expected a valid UUID"


def _between(rule: tuple[float, float], value: Any) -> str | None:
    if value < rule[0] or value > rule[1]:
        return f"value should be between {int(rule[0])} and {int(rule[1])}"
    return None


def _len_eq(rule: int, value: Any) -> str | None:
    return None if length(value) == rule else f"length must be {rule}"


def _len_min(rule: int, value: Any) -> str | None:
    return None if length(value) >= rule else f"length must be at least {rule}"


def _len_max(rule: int, value: Any) -> str | None:
    return None if length(value) <= rule else f"length must be at most {rule}"


def _starts_with(rule: str, value: Any) -> str | None:
    return None if value.startswith(rule) else f"should start with: {rule}"


def _not_match(rule: str, value: Any) -> str | None:
    return f"invalid value: {value}" if re.search(rule, value) else None


def _match_none(rule: tuple[tuple[str, str], ...], value: Any) -> str | None:
    for pattern, err in rule:
        if re.search(pattern, value):
            return err
    return None


def _match(rule: str, value: Any) -> str | None:
    return None if re.search(rule, value) else f"invalid value: {value}"


def _match_all(rule: tuple[tuple[str, str], ...], value: Any) -> str | None:
    for pattern, err in rule:
        if not re.search(pattern, value):
            return err
    return None


def _match_any(rule: tuple[tuple[str, ...], str], value: Any) -> str | None:
    patterns, err = rule
    return None if any(re.search(p, value) for p in patterns) else err


def _contains(rule: Any, value: Any) -> str | None:
    return None if rule in value else f"expected to contain: {rule}"


def _custom_validator(rule: Callable[[Any], str | None], value: Any) -> str | None:
    return rule(value)


def _mutually_exclusive_subsets(rule: tuple[tuple[str, ...], ...], value: Any) -> str | None:
    member_of: list[tuple[str, ...]] = []
    for item in value:
        for subset in rule:
            if item in subset and subset not in member_of:
                member_of.append(subset)
    if len(member_of) > 1:
        return "these sets are mutually exclusive: " + quoted_list([list(s) for s in member_of])
    return None


#: (field attribute, its "not given" value, the validator), in Kong's ``validators_order``; ``match_none`` and
#: ``match_all`` default to an empty tuple, which their validators pass, so they are always called
VALIDATORS: tuple[tuple[str, Any, Rule], ...] = (
    ("eq", UNSET, _eq),
    ("ne", UNSET, _ne),
    ("not_one_of", None, _not_one_of),
    ("one_of", None, _one_of),
    ("gt", None, _gt),
    ("timestamp", False, _timestamp),
    ("uuid", False, _uuid),
    ("between", None, _between),
    ("len_eq", None, _len_eq),
    ("len_min", None, _len_min),
    ("len_max", None, _len_max),
    ("starts_with", None, _starts_with),
    ("not_match", None, _not_match),
    ("match_none", None, _match_none),
    ("match", None, _match),
    ("match_all", None, _match_all),
    ("match_any", None, _match_any),
    ("contains", UNSET, _contains),
    ("custom_validator", None, _custom_validator),
    ("mutually_exclusive_subsets", None, _mutually_exclusive_subsets),
)


def run_validators(rules: object, value: Any) -> str | None:
    """The validators of one field (``rules``: a ``Field``), in Kong's order; the first failure wins."""
    for name, absent, validator in VALIDATORS:
        rule = getattr(rules, name)
        if rule is absent:
            continue
        err = validator(rule, value)
        if err is not None:
            return err
    return None
