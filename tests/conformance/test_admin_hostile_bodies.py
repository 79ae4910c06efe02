"""Malformed and hostile bodies over a real socket: always a 400 with Kong's error JSON, the store unchanged, the
connection still usable, and no error line (an error line means an exception reached the handler's last resort)."""

from __future__ import annotations

import json
from collections.abc import Mapping

import pytest

from gateway.entities.plugin_configs import PluginSpec
from gateway.entities.schema import Field, Schema
from tests.conformance.conftest import Admin
from tests.fixtures.plugins import register_for_test

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data; boundary=XX"


def _part(name: bytes, value: bytes) -> bytes:
    return b'--XX\r\nContent-Disposition: form-data; name="' + name + b'"\r\n\r\n' + value + b"\r\n"


CANNOT_PARSE = {"message": "Cannot parse JSON body"}
BROKEN_MULTIPART = {"message": "Cannot parse multipart body"}
TOO_MANY = {"message": "Too many arguments"}

CASES: list[tuple[str, str, bytes, Mapping[str, object] | None]] = [
    # (id, content type, body, exact answer or None for "a Kong error JSON")
    ("json-100k-brackets", JSON, b"[" * 100_000, CANNOT_PARSE),
    ("json-deep-object", JSON, b'{"a":' * 5000 + b"1" + b"}" * 5000, CANNOT_PARSE),
    ("json-deep-in-field", JSON, b'{"name":"x","host":"h","tags":' + b"[" * 200 + b"]" * 200 + b"}", CANNOT_PARSE),
    ("json-huge-integer", JSON, b'{"name":"x","host":"h","port":' + b"9" * 10_000 + b"}", CANNOT_PARSE),
    ("json-overflowing-float", JSON, b'{"name":"x","host":"h","read_timeout":1e999}', CANNOT_PARSE),
    ("json-nan", JSON, b'{"name":"x","host":"h","retries":NaN}', CANNOT_PARSE),
    ("json-infinity", JSON, b'{"name":"x","host":"h","retries":-Infinity}', CANNOT_PARSE),
    ("json-invalid-utf8", JSON, b'{"name":"\xff\xfe","host":"h"}', CANNOT_PARSE),
    ("json-lone-surrogate", JSON, b'{"name":"x","host":"h","tags":["\\ud800"]}', CANNOT_PARSE),
    ("json-bom", JSON, b'\xef\xbb\xbf{"name":"x","host":"h"}', CANNOT_PARSE),
    ("json-array", JSON, b"[1,2]", CANNOT_PARSE),
    ("json-truncated", JSON, b'{"name":"x","host":', CANNOT_PARSE),
    ("json-form-body", JSON, b"name=x&host=h", CANNOT_PARSE),
    ("form-10k-brackets", FORM, b"name" + b"[b]" * 10_000 + b"=1", None),
    ("form-10k-dots", FORM, b"name" + b".b" * 10_000 + b"=1", None),
    ("form-infinite-index", FORM, b"tags[inf]=a&name=x&host=h", None),
    ("form-nan-index", FORM, b"tags[nan]=a&name=x&host=h", None),
    ("form-mixed-keys", FORM, b"tags=1&tags[b]=2&tags[1]=3&tags.c=4&name=x&host=h", None),
    ("form-too-many", FORM, b"&".join(b"a%d=1" % i for i in range(1001)), TOO_MANY),
    ("form-bad-escapes", FORM, b"name=%ff%ED%A0%80%&host=%zz&port=1e999", None),
    ("form-json-body", FORM, b'{"name":"x","host":"h"}', None),
    (
        "multipart-unterminated",
        MULTIPART,
        b'--XX\r\nContent-Disposition: form-data; name="name"\r\n\r\nx',
        BROKEN_MULTIPART,
    ),
    ("multipart-wrong-boundary", MULTIPART, _part(b"name", b"x").replace(b"--XX", b"--YY"), BROKEN_MULTIPART),
    ("multipart-no-boundary", "multipart/form-data", _part(b"name", b"x") + b"--XX--\r\n", BROKEN_MULTIPART),
    ("multipart-empty-boundary", 'multipart/form-data; boundary=""', b"--\r\n--\r\n", BROKEN_MULTIPART),
    (
        "multipart-too-many-parts",
        MULTIPART,
        b"".join(_part(b"a%d" % i, b"v") for i in range(1001)) + b"--XX--\r\n",
        TOO_MANY,
    ),
    ("multipart-deep-name", MULTIPART, _part(b"name" + b"[b]" * 500, b"x") + b"--XX--\r\n", None),
    ("multipart-header-flood", MULTIPART, b"--XX\r\n" + b"X-A: b\r\n" * 100 + b"\r\nx\r\n--XX--\r\n", BROKEN_MULTIPART),
    ("multipart-json-body", MULTIPART, b'{"name":"x","host":"h"}', BROKEN_MULTIPART),
]


@pytest.mark.parametrize(("content_type", "body", "answer"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
@pytest.mark.parametrize("path", ["/services", "/plugins", "/services/s1/routes"])
async def test_hostile_body_is_a_400_with_kongs_json(
    admin: Admin, path: str, content_type: str, body: bytes, answer: Mapping[str, object] | None
) -> None:
    created = await admin.http.post("/services", json={"name": "s1", "host": "s1.test"})
    assert created.status_code == 201
    before = admin.export()
    for method, target in (("POST", path), ("PUT", f"{path}/x1"), ("PATCH", "/services/s1")):
        res = await admin.http.request(method, target, content=body, headers={"Content-Type": content_type})
        assert res.status_code == 400, (method, target, res.text)
        assert res.headers["content-type"] == "application/json; charset=utf-8"
        decoded = res.json()
        if answer is not None and method != "PATCH":
            assert decoded == answer
        assert isinstance(decoded.get("message"), str)
    assert admin.export() == before
    # the same keep-alive connection still serves
    assert (await admin.http.get("/services/s1")).status_code == 200
    assert "[error]" not in admin.error_log()


async def test_declarative_yaml_bodies(dbless_admin: Admin) -> None:
    """``POST /config`` YAML: nesting, alias bombs and values JSON cannot carry are Kong's code 14, not a 500."""
    admin = dbless_admin
    # eight levels of nine aliases each: 43 million values from 300 bytes
    bomb = ["a: &a [" + ",".join(["x"] * 9) + "]"]
    bomb += [
        f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]" for prev, cur in zip("abcdefg", "bcdefgh", strict=True)
    ]
    head = "_format_version: '3.0'\n"
    cases = {  # body -> what the error says
        head + "services: " + "[" * 5000: "nesting depth",
        head + "\n".join(bomb) + "\n": "expands to more than 1000000 values",
        head + "services:\n- {name: s, host: h, read_timeout: .inf}\n": "unsupported number inf",
        head + "services:\n- {name: s, host: h, tags: !!binary aGk=}\n": "unsupported value of type bytes",
    }
    for text, says in cases.items():
        res = await admin.http.post("/config", content=text.encode(), headers={"Content-Type": "application/yaml"})
        assert res.status_code == 400, (says, res.text)
        body = res.json()
        assert body["code"] == 14 and body["name"] == "invalid declarative configuration", says
        assert body["fields"]["error"].startswith("failed parsing declarative configuration: "), says
        assert says in body["fields"]["error"], body
    # a plain date stays a string, as lyaml reads it
    dated = "_format_version: '3.0'\nservices:\n- {name: s, host: h, tags: [2024-01-31]}\n"
    res = await admin.http.post("/config", content=dated.encode(), headers={"Content-Type": "application/yaml"})
    assert res.status_code == 201, res.text
    assert next(iter(res.json()["services"].values()))["tags"] == ["2024-01-31"]
    assert "[error]" not in admin.error_log()


async def test_query_strings_are_bounded_too(admin: Admin) -> None:
    many = "&".join(f"a{i}=1" for i in range(1001))
    res = await admin.http.get(f"/services?{many}")
    assert (res.status_code, res.json()) == (400, TOO_MANY)
    for query in ("size=nan", "size=1e999", "size=inf"):
        res = await admin.http.get(f"/services?{query}")
        assert res.status_code == 400, query
        assert res.json() == {
            "code": 9,
            "name": "invalid size",
            "message": "size must be an integer between 1 and 1000",
        }, res.text
    res = await admin.http.get("/services?a" + "[1]" * 200 + "=1")
    assert res.status_code == 400 and "nested more than 100 levels" in res.json()["message"]
    assert "[error]" not in admin.error_log()


async def test_nesting_up_to_the_limit_round_trips(admin: Admin, monkeypatch: pytest.MonkeyPatch) -> None:
    """100 levels (the body's object and 99 below it) are accepted, stored and read back (in the free-form config
    of a plugin registered for the test); 101 are not."""
    register_for_test(monkeypatch, PluginSpec("deep", Schema("deep.config", [("k", Field("any"))])))
    config: object = "leaf"
    for _ in range(99):
        config = {"k": config}
    body = {"name": "deep", "config": config}
    res = await admin.http.post("/plugins", json=body)
    assert res.status_code == 201, res.text
    got = await admin.http.get(f"/plugins/{res.json()['id']}")
    assert got.status_code == 200 and got.json()["config"] == config
    deeper = json.dumps({"name": "deep", "config": {"k": config}})
    res = await admin.http.post("/plugins", content=deeper, headers={"Content-Type": JSON})
    assert (res.status_code, res.json()) == (400, CANNOT_PARSE)
