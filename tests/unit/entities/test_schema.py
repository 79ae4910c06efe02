"""The schema framework: Kong's type messages, validator order, checks and error formatting."""

from __future__ import annotations

import pytest

from gateway.entities.entity_checks import at_least_one_of, conditional, custom_check, mutually_required
from gateway.entities.errors import flatten_field_errors, lua_pretty, schema_violation
from gateway.entities.schema import Field, Schema
from gateway.entities.values import NULL

SCHEMA = Schema(
    "things",
    [
        ("id", Field("string", uuid=True, auto=True)),
        ("name", Field("string", required=True)),
        ("count", Field("integer", between=(0, 10), default=3)),
        ("ratio", Field("number")),
        ("on", Field("boolean", default=True)),
        ("items", Field("array", elements=Field("string", one_of=("a", "b")))),
        ("labels", Field("set", elements=Field("string"))),
        ("meta", Field("map", keys=Field("string"), values=Field("integer"))),
        ("kind", Field("string", default="x")),
        ("extra", Field("string")),
        ("other", Field("string")),
    ],
    entity_checks=(
        conditional("kind", {"one_of": ("y",)}, "extra", {"required": True}),
        at_least_one_of("extra", "other"),
        mutually_required("ratio", "labels"),
    ),
)


def validate(data: dict, full: bool = True) -> dict:
    return SCHEMA.validate(SCHEMA.process_auto_fields(data, "insert"), full_check=full)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("name", 1, "expected a string"),
        ("count", "1", "expected an integer"),
        ("count", 1.5, "expected an integer"),
        ("count", True, "expected an integer"),
        ("ratio", "x", "expected a number"),
        ("on", "true", "expected a boolean"),
        ("items", "a", "expected an array"),
        ("labels", "a", "expected a set"),
        ("meta", [], "expected a map"),
        ("count", 11, "value should be between 0 and 10"),
        ("name", "", "length must be at least 1"),
        ("nope", 1, "unknown field"),
    ],
)
def test_type_and_validator_messages(field: str, value: object, message: str) -> None:
    errors = validate({"name": "n", "other": "o", field: value})
    assert errors[field] == message


def test_defaults_nulls_and_set_dedup() -> None:
    row = SCHEMA.process_auto_fields({"name": "n", "labels": ["a", "a", "b"]}, "insert")
    assert row["count"] == 3 and row["on"] is True and row["kind"] == "x"
    assert row["ratio"] is None and row["labels"] == ["a", "b"]
    assert len(row["id"]) == 36


def test_update_context_fills_no_defaults() -> None:
    row = SCHEMA.process_auto_fields({"name": "n"}, "update")
    assert row == {"name": "n"}


def test_required_null_vs_absent() -> None:
    assert validate({"other": "o"})["name"] == "required field missing"
    assert "name" not in SCHEMA.validate({"other": "o"}, full_check=False)
    assert SCHEMA.validate({"name": None, "other": "o"}, full_check=False)["name"] == "required field missing"


def test_array_element_errors_are_positional() -> None:
    errors = validate({"name": "n", "other": "o", "items": ["a", "c", "b"]})
    assert errors["items"] == [None, "expected one of: a, b"]
    message = schema_violation(errors).message
    assert message == "schema violation (items.2: expected one of: a, b)"


def test_conditional_required_and_message() -> None:
    errors = validate({"name": "n", "other": "o", "kind": "y"})
    assert errors == {
        "extra": "required field missing",
        "@entity": ["failed conditional validation given value of field 'kind'"],
    }


def test_at_least_one_of_and_update_wording() -> None:
    assert validate({"name": "n"})["@entity"] == ["at least one of these fields must be non-empty: 'extra', 'other'"]
    errors = SCHEMA.validate({"name": "n", "extra": None}, full_check=False, updating=True)
    assert errors["@entity"] == ["when updating, at least one of these fields must be non-empty: 'extra', 'other'"]


def test_mutually_required() -> None:
    errors = validate({"name": "n", "other": "o", "ratio": 1.0})
    assert errors["@entity"] == ["all or none of these fields must be set: 'ratio', 'labels'"]


def test_custom_check_skipped_when_its_field_is_invalid() -> None:
    calls: list[dict] = []

    def check(entity: dict) -> str | None:
        calls.append(entity)
        return "bad"

    schema = Schema(
        "t", [("a", Field("integer")), ("b", Field("integer"))], entity_checks=(custom_check(("a", "b"), check),)
    )
    assert schema.validate({"a": "x", "b": 1}) == {"a": "expected an integer"}
    assert calls == []
    assert schema.validate({"a": 1, "b": 1}) == {"@entity": ["bad"]}


def test_eq_null_with_custom_err() -> None:
    schema = Schema("t", [("a", Field("string", eq=NULL, err="cannot set 'a'"))])
    assert schema.validate({"a": "x"}) == {"a": "cannot set 'a'"}
    assert schema.validate({"a": None}) == {}


def test_schema_violation_message_ordering() -> None:
    err = schema_violation({"b": "x", "a": "y", "@entity": ["first"]})
    assert err.message == "3 schema violations (first; a: y; b: x)"
    assert err.to_json()["name"] == "schema violation" and err.http_status == 400


def test_nested_record_errors_are_rendered_like_penlight() -> None:
    parts = flatten_field_errors({"hc": {"active": {"timeout": "t"}}})
    assert parts == ['hc.active: {\n  timeout = "t"\n}']
    assert (
        lua_pretty({"route": None, "name": "x", "service": {"id": "1"}}, "") == '{name="x",route=null,service={id="1"}}'
    )
