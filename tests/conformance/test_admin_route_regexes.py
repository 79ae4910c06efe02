"""Route regexes through the Admin API: what the router's engine cannot run is refused and stores nothing.

Kong 3.x (``traditional_compatible``) dry-runs a path regex with PCRE (field error ``invalid regex: ...``),
then parses the route as an ATC expression, whose regexes the Rust ``regex`` crate compiles; what needs
backtracking fails there: ``Router Expression failed validation: ...`` under ``@entity``.
"""

from __future__ import annotations

from tests.conformance.conftest import Admin

_BACKREF = (
    r"Router Expression failed validation: regex '/(?<x>a)\k<x>' cannot run in linear time: "
    r"back-references are not supported (at '\k<x>')"
)
_LOOKAHEAD = (
    "Router Expression failed validation: regex 'v(?=1)' cannot run in linear time: "
    "look-ahead assertions are not supported (at '(?=')"
)


async def test_back_reference_path_is_refused_and_nothing_is_stored(admin: Admin) -> None:
    before = admin.export()
    res = await admin.http.post("/routes", json={"name": "r", "paths": [r"~/(?<x>a)\k<x>"]})
    assert res.status_code == 400
    assert res.json() == {
        "code": 2,
        "name": "schema violation",
        "message": f"schema violation ({_BACKREF})",
        "fields": {"@entity": [_BACKREF]},
    }
    assert admin.export() == before
    res = await admin.http.get("/routes")
    assert (res.status_code, res.json()["data"]) == (200, [])
    lines = admin.access_lines()
    assert '"POST /routes HTTP/1.1" 400 ' in lines[-2]
    assert '"GET /routes HTTP/1.1" 200 ' in lines[-1]


async def test_updates_and_header_regexes_are_checked_too(admin: Admin) -> None:
    res = await admin.http.post("/routes", json={"name": "r", "paths": ["~/items/(?<id>[0-9]+)$"]})
    assert res.status_code == 201, res.text
    before = admin.export()
    res = await admin.http.patch("/routes/r", json={"paths": [r"~/(?<x>a)\k<x>"]})
    assert (res.status_code, res.json()["fields"]) == (400, {"@entity": [_BACKREF]})
    res = await admin.http.put("/routes/r", json={"headers": {"x-v": ["~*v(?=1)"]}})
    assert (res.status_code, res.json()["message"]) == (400, f"schema violation ({_LOOKAHEAD})")
    assert admin.export() == before
    res = await admin.http.get("/routes/r")
    assert res.json()["paths"] == ["~/items/(?<id>[0-9]+)$"]


async def test_malformed_path_regex_keeps_the_field_error(admin: Admin) -> None:
    res = await admin.http.post("/routes", json={"paths": ["/ok", "~/(a"]})
    assert res.status_code == 400
    assert res.json() == {
        "code": 2,
        "name": "schema violation",
        "message": "schema violation (paths.2: invalid regex: '/(a' (PCRE returned: missing ): /(a))",
        "fields": {"paths": [None, "invalid regex: '/(a' (PCRE returned: missing ): /(a)"]},
    }
