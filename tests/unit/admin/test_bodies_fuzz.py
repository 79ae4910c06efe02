"""Property tests of the body parsers: whatever the bytes, the outcome is arguments JSON can carry or a 400 with
Kong's error JSON (``BodyError``); never another exception. Plus the hostile shapes the issue names, explicitly."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.admin.bodies import (
    MAX_NESTING,
    BodyError,
    decode_json_object,
    json_depth_exceeds,
    load_args,
    parse_multipart,
)
from gateway.admin.http import Request
from gateway.store.declarative import check_document, parse_text

FUZZ = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=40,
)


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def _carried(value: Any) -> None:
    """What the Admin API will do with arguments later: encode them as UTF-8 JSON, without NaN."""
    json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")
    assert check_document(value) is None


def _load(method: str, body: bytes, content_type: str, query: str = "") -> Any:
    request = Request(method, "/services", query, [("Content-Type", content_type)], body)
    try:
        args = load_args(request)
    except BodyError as err:
        assert err.response.status == 400
        assert isinstance(err.response.json()["message"], str)
        return None
    _carried(args.uri)
    _carried(args.post)
    return args


# ------------------------------------------------------------------------------------------------ JSON
@FUZZ
@given(st.binary(max_size=400))
def test_any_bytes_as_json(body: bytes) -> None:
    decoded = decode_json_object(body)
    assert decoded is None or isinstance(decoded, dict)
    if decoded is not None:
        _carried(decoded)


@FUZZ
@given(JSON_VALUES, st.data())
def test_mutated_json_is_an_object_or_refused(value: Any, data: st.DataObject) -> None:
    text = bytearray(json.dumps({"v": value}, ensure_ascii=data.draw(st.booleans())).encode())
    for _ in range(data.draw(st.integers(0, 3))):
        at = data.draw(st.integers(0, len(text)))
        text[at:at] = data.draw(st.sampled_from([b"[", b"]", b"{", b'"', b"\\", b"\\ud800", b"NaN", b"1e999", b"\xff"]))
    _load("POST", bytes(text), "application/json")


@FUZZ
@given(JSON_VALUES, st.integers(0, 6))
def test_the_depth_scan_agrees_with_the_decoded_value(value: Any, limit: int) -> None:
    """Brackets inside strings (and escaped quotes before them) must not count."""
    body = json.dumps(value).encode()
    assert json_depth_exceeds(body, limit) == (_depth(value) > limit)


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000,
        b"[" * (MAX_NESTING + 1) + b"]" * (MAX_NESTING + 1),
        b'{"a":' * 2000 + b"1" + b"}" * 2000,
        b'{"a":' + b"9" * 100_000 + b"}",
        b'{"a":1e400}',
        b'{"a":-Infinity}',
        b'{"a":NaN}',
        b'{"a":"\\udc00"}',
        b'{"\\ud800x":1}',
        b'{"a":"\xc3\x28"}',
        b"\xef\xbb\xbf{}",
    ],
)
def test_hostile_json_is_cannot_parse(body: bytes) -> None:
    with pytest.raises(BodyError) as info:
        load_args(Request("POST", "/services", "", [("Content-Type", "application/json")], body))
    assert info.value.response.json() == {"message": "Cannot parse JSON body"}


def test_json_that_kong_accepts_still_decodes() -> None:
    assert decode_json_object(b'{"a":"\\ud83d\\ude00","b":[[[1]]],"c":"[[[[","d":1e308,"a2":2}') == {
        "a": "\U0001f600",
        "b": [[[1]]],
        "c": "[[[[",
        "d": 1e308,
        "a2": 2,
    }
    assert decode_json_object(b'{"a":1,"a":2}') == {"a": 2}  # the last one wins, as with cjson
    nested: Any = 1
    for _ in range(MAX_NESTING - 1):
        nested = [nested]
    assert decode_json_object(json.dumps({"a": nested}).encode()) == {"a": nested}


# ------------------------------------------------------------------------------------------------ forms and queries
NAME_PIECES = st.sampled_from(
    [
        *("a", "tags", "config", "[1]", "[2]", "[]", "[k]", ".c", "[0x2]", "[inf]", "[nan]", "[1e999]", "[-1]"),
        *("[ 3 ]", "%5B1%5D", "%5bk%5d", "[", "]", ".", "..", "[a.b]", "[[x]]", "=", "&"),
    ]
)


@FUZZ
@given(
    st.lists(st.tuples(st.lists(NAME_PIECES, max_size=8).map("".join), st.text(max_size=6)), max_size=12),
    st.sampled_from(["POST", "PUT", "PATCH", "GET"]),
)
def test_any_form_or_query_decodes_or_is_refused(pairs: list[tuple[str, str]], method: str) -> None:
    text = "&".join(f"{name}={value}" for name, value in pairs)
    _load(method, text.encode(), "application/x-www-form-urlencoded", query=text)


@FUZZ
@given(st.binary(max_size=300))
def test_any_bytes_as_a_form(body: bytes) -> None:
    _load("POST", body, "application/x-www-form-urlencoded", query=body.decode("latin-1"))


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"a" + b"[b]" * 10_000 + b"=1", "nested more than 100 levels deep"),
        (b"a" + b".b" * 10_000 + b"=1", "nested more than 100 levels deep"),
        (b"a" + b"%5B1%5D" * 200 + b"=1", "nested more than 100 levels deep"),
        (b"a[inf]=1", "invalid array index [inf]"),
        (b"a[NaN]=1", "invalid array index [NaN]"),
        (b"a[-1e999]=1", "invalid array index [-1e999]"),
        (b"&".join([b"a=1"] * 1001), "Too many arguments"),
    ],
)
def test_hostile_forms(body: bytes, says: str) -> None:
    with pytest.raises(BodyError) as info:
        load_args(Request("POST", "/services", "", [("Content-Type", "application/x-www-form-urlencoded")], body))
    assert info.value.response.status == 400 and says in info.value.response.json()["message"]


def test_lua_numbers_as_indexes() -> None:
    """``tonumber`` reads hex, exponents and spaces; a table with map keys too is an object, as cjson writes it."""
    args = load_args(
        Request(
            "POST", "/x", "", [("Content-Type", "application/x-www-form-urlencoded")], b"a[0x2]=b&a[1e0]=a&c[ 1 ]=x"
        )
    )
    assert args.post == {"a": ["a", "b"], "c": ["x"]}
    mixed = load_args(
        Request("POST", "/x", "", [("Content-Type", "application/x-www-form-urlencoded")], b"t=1&t[b]=2&t[1]=3")
    )
    assert mixed.post == {"t": {"1": ["1", "3"], "b": "2"}}


# ------------------------------------------------------------------------------------------------ multipart
def _multipart(parts: list[tuple[str, str]]) -> bytes:
    out = b"".join(
        f'--XX\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode() for name, value in parts
    )
    return out + b"--XX--\r\n"


@FUZZ
@given(
    st.lists(st.tuples(st.lists(NAME_PIECES, max_size=4).map("".join), st.text(max_size=6)), max_size=6),
    st.data(),
)
def test_mutated_multipart_decodes_or_is_refused(parts: list[tuple[str, str]], data: st.DataObject) -> None:
    body = bytearray(_multipart([(name.replace('"', ""), value) for name, value in parts]))
    for _ in range(data.draw(st.integers(0, 3))):
        at = data.draw(st.integers(0, len(body)))
        if data.draw(st.booleans()):
            del body[at : at + data.draw(st.integers(1, 6))]
        else:
            body[at:at] = data.draw(st.sampled_from([b"--XX", b"\r\n", b"--XX--", b'"', b"\xff", b":"]))
    content_type = data.draw(st.sampled_from(["multipart/form-data; boundary=XX", "multipart/form-data; boundary=YY"]))
    _load("POST", bytes(body), content_type)


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data", b"--XX\r\n"),
        ("multipart/form-data; boundary=XX", b'--XX\r\nContent-Disposition: form-data; name="a"\r\n\r\nunterminated'),
        ("multipart/form-data; boundary=XX", b"--XX\r\n" + b"X-A: 1\r\n" * 20 + b"\r\nx\r\n--XX--\r\n"),
        ("multipart/form-data; boundary=XX", b"no delimiter at all"),
    ],
)
def test_broken_multipart_is_refused(content_type: str, body: bytes) -> None:
    with pytest.raises(BodyError) as info:
        parse_multipart(body, content_type)
    assert info.value.response.json() == {"message": "Cannot parse multipart body"}


def test_multipart_parts_are_bounded() -> None:
    body = _multipart([(f"a{i}", "v") for i in range(1001)])
    with pytest.raises(BodyError) as info:
        parse_multipart(body, "multipart/form-data; boundary=XX")
    assert info.value.response.json() == {"message": "Too many arguments"}
    assert len(parse_multipart(_multipart([(f"a{i}", "v") for i in range(1000)]), "multipart/form-data; boundary=XX"))


# ------------------------------------------------------------------------------------------------ YAML
@FUZZ
@given(st.text(max_size=300))
def test_any_text_as_a_declarative_document(text: str) -> None:
    try:
        document = parse_text(text)
    except ValueError as err:
        assert str(err).startswith("failed parsing declarative configuration: ")
        return
    _carried(document)
