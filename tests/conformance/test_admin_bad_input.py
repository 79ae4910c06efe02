"""Bad input through the Admin API gets Kong's error and changes nothing."""

from __future__ import annotations

from tests.conformance.conftest import Admin


async def test_unknown_fields_and_wrong_types_are_rejected_without_change(admin: Admin) -> None:
    before = admin.export()
    res = await admin.http.post("/services", json={"name": "s", "host": "h.test", "colour": "red", "port": "x"})
    assert res.status_code == 400
    assert res.json() == {
        "code": 2,
        "name": "schema violation",
        "message": "2 schema violations (colour: unknown field; port: expected an integer)",
        "fields": {"colour": "unknown field", "port": "expected an integer"},
    }
    res = await admin.http.post("/services", content=b'{"name": "s", ', headers={"Content-Type": "application/json"})
    assert (res.status_code, res.json()) == (400, {"message": "Cannot parse JSON body"})
    res = await admin.http.post("/services", content=b"name=s", headers={"Content-Type": "text/csv"})
    assert res.status_code == 415
    res = await admin.http.patch("/services/no-such-service", json={"retries": 1})
    assert res.status_code == 404
    res = await admin.http.get("/routes/00000000-0000-4000-8000-000000000000")
    assert (res.status_code, res.json()) == (404, {"message": "Not found"})
    assert admin.export() == before
