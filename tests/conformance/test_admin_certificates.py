"""Kong's certificate and SNI Admin API cases (reference section 8.C, cases 42-72), over a real socket.

Each case asserts Kong's status and error JSON; content-type variants follow Kong's ``it_content_types``
(JSON, form-urlencoded with repeated ``snis``, multipart with ``snis[1]``/``snis[2]``).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import pytest

from tests.conformance.conftest import Admin
from tests.fixtures.certs import Issued

CONTENT_TYPES = ["json", "form", "multipart"]


async def send(admin: Admin, method: str, path: str, body: dict[str, Any], kind: str = "json") -> httpx.Response:
    """One request with ``body`` encoded as Kong's specs do for each content type."""
    if kind == "json":
        return await admin.http.request(method, path, json=body)
    if kind == "form":
        return await admin.http.request(method, path, data=body)
    fields: dict[str, Any] = {}
    for key, value in body.items():
        if isinstance(value, list):
            for i, item in enumerate(value, start=1):
                fields[f"{key}[{i}]"] = item
        else:
            fields[key] = value
    files = {k: (None, v) for k, v in fields.items()}
    return await admin.http.request(method, path, files=files)


async def create(admin: Admin, pair: Issued, snis: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"cert": pair.cert_pem, "key": pair.key_pem, **extra}
    if snis is not None:
        body["snis"] = snis
    res = await admin.http.post("/certificates", json=body)
    assert res.status_code == 201, res.text
    return res.json()


async def test_42_many_snis_sorted(admin: Admin, pki: dict[str, Issued]) -> None:
    names = [f"my-sni-{i:03d}.test" for i in range(150)]
    await create(admin, pki["rsa"], list(reversed(names)))
    res = await admin.http.get("/certificates")
    data = res.json()["data"]
    assert len(data) == 1 and data[0]["snis"] == names
    assert data[0]["cert_alt"] is None and data[0]["key_alt"] is None


async def test_43_44_sni_conflicts_create_nothing(admin: Admin, pki: dict[str, Issued]) -> None:
    res = await send(
        admin,
        "POST",
        "/certificates",
        {"cert": pki["rsa"].cert_pem, "key": pki["rsa"].key_pem, "snis": ["a.test", "b.test", "a.test"]},
    )
    assert res.status_code == 400
    assert res.json()["message"] == "schema violation (snis: a.test is duplicated)"
    owner = await create(admin, pki["rsa"], ["taken.test"])
    before = admin.export()
    res = await send(
        admin,
        "POST",
        "/certificates",
        {"cert": pki["rsa"].cert_pem, "key": pki["rsa"].key_pem, "snis": ["taken.test", "new.test"]},
    )
    assert res.status_code == 400
    assert res.json()["message"] == (
        f"schema violation (snis: taken.test already associated with existing certificate '{owner['id']}')"
    )
    assert admin.export() == before


@pytest.mark.parametrize("kind", CONTENT_TYPES)
async def test_45_46_create_echoes_snis(admin: Admin, pki: dict[str, Issued], kind: str) -> None:
    res = await send(
        admin,
        "POST",
        "/certificates",
        {"cert": pki["rsa"].cert_pem, "key": pki["rsa"].key_pem, "snis": ["n1.test", "n2.test"]},
        kind,
    )
    assert res.status_code == 201, res.text
    body = res.json()
    assert body["snis"] == ["n1.test", "n2.test"] and body["cert"] == pki["rsa"].cert_pem
    assert body["cert_alt"] is None and body["key_alt"] is None
    res = await send(admin, "POST", "/certificates", {"cert": pki["rsa2"].cert_pem, "key": pki["rsa2"].key_pem}, kind)
    assert res.status_code == 201 and '"snis":[]' in res.text


async def test_47_48_get_by_id_or_sni(admin: Admin, pki: dict[str, Issued]) -> None:
    cert = await create(
        admin, pki["rsa"], ["g1.test", "g2.test"], cert_alt=pki["ecdsa"].cert_pem, key_alt=pki["ecdsa"].key_pem
    )
    by_id = (await admin.http.get(f"/certificates/{cert['id']}")).json()
    by_sni = (await admin.http.get("/certificates/g2.test")).json()
    assert by_id == by_sni and by_id["snis"] == ["g1.test", "g2.test"] and by_id["cert_alt"] == pki["ecdsa"].cert_pem
    res = await admin.http.get(f"/certificates/{uuid.uuid4()}")
    assert (res.status_code, res.json()) == (404, {"message": "Not found"})
    res = await admin.http.get("/certificates/doesntexist.test")
    assert (res.status_code, res.json()) == (404, {"message": "SNI not found"})


async def test_49_to_51_put(admin: Admin, pki: dict[str, Issued]) -> None:
    new_id = str(uuid.uuid4())
    res = await admin.http.put(
        f"/certificates/{new_id}", json={"cert": pki["rsa"].cert_pem, "key": pki["rsa"].key_pem, "snis": ["p1.test"]}
    )
    assert res.status_code == 200 and res.json()["id"] == new_id and res.json()["snis"] == ["p1.test"]
    res = await admin.http.put(
        "/certificates/u1.test", json={"cert": pki["rsa"].cert_pem, "key": pki["rsa"].key_pem, "snis": ["u2.test"]}
    )
    assert res.status_code == 200 and res.json()["snis"] == ["u1.test", "u2.test"]
    res = await admin.http.put(
        "/certificates/v1.test",
        json={"cert": pki["rsa"].cert_pem, "key": pki["rsa"].key_pem, "snis": ["v1.test", "v2.test"]},
    )
    assert res.json()["snis"] == ["v1.test", "v2.test"]
    await asyncio.sleep(1.05)  # updated_at has a one-second resolution, as in Kong
    res = await admin.http.put(
        f"/certificates/{new_id}", json={"cert": pki["rsa2"].cert_pem, "key": pki["rsa2"].key_pem}
    )
    body = res.json()
    assert res.status_code == 200 and body["snis"] == [] and body["cert"] == pki["rsa2"].cert_pem
    assert body["updated_at"] > body["created_at"]


async def test_52_to_55_validation_messages(admin: Admin, pki: dict[str, Issued]) -> None:
    before = admin.export()
    res = await admin.http.put(f"/certificates/{uuid.uuid4()}", json={})
    assert (res.status_code, res.json()) == (
        400,
        {
            "code": 2,
            "name": "schema violation",
            "message": "2 schema violations (cert: required field missing; key: required field missing)",
            "fields": {"cert": "required field missing", "key": "required field missing"},
        },
    )
    res = await admin.http.put(
        f"/certificates/{uuid.uuid4()}",
        json={"cert": pki["rsa"].cert_pem, "key": pki["rsa"].key_pem, "cert_alt": pki["ecdsa"].cert_pem},
    )
    assert res.json() == {
        "code": 2,
        "name": "schema violation",
        "message": "schema violation (all or none of these fields must be set: 'cert_alt', 'key_alt')",
        "fields": {"@entity": ["all or none of these fields must be set: 'cert_alt', 'key_alt'"]},
    }
    res = await admin.http.post("/certificates", json={"cert": pki["rsa"].cert_pem, "key": pki["rsa2"].key_pem})
    assert res.status_code == 400 and res.json()["message"] == "schema violation (certificate does not match key)"
    res = await admin.http.post(
        "/certificates",
        json={
            "cert": pki["rsa"].cert_pem,
            "key": pki["rsa"].key_pem,
            "cert_alt": pki["ecdsa"].cert_pem,
            "key_alt": pki["ecdsa2"].key_pem,
        },
    )
    assert res.json()["message"] == "schema violation (alternative certificate does not match key)"
    res = await admin.http.post(
        "/certificates",
        json={
            "cert": pki["rsa"].cert_pem,
            "key": pki["rsa"].key_pem,
            "cert_alt": pki["rsa2"].cert_pem,
            "key_alt": pki["rsa2"].key_pem,
        },
    )
    assert res.status_code == 400
    assert "need to have different type (e.g. RSA and ECDSA)" in res.json()["message"]
    assert admin.export() == before


async def test_56_patch_cert_and_key_by_sni(admin: Admin, pki: dict[str, Issued]) -> None:
    await create(admin, pki["rsa"], ["q1.test", "q2.test"])
    res = await admin.http.patch(
        "/certificates/q1.test", json={"cert": pki["rsa2"].cert_pem, "key": pki["rsa2"].key_pem}
    )
    assert res.status_code == 200, res.text
    assert res.json()["cert"] == pki["rsa2"].cert_pem and res.json()["snis"] == ["q1.test", "q2.test"]


async def test_56_to_61_patch(admin: Admin, pki: dict[str, Issued]) -> None:
    cert = await create(admin, pki["rsa"], ["q1.test", "q2.test"])
    other = await create(admin, pki["rsa2"], ["other.test"])
    res = await admin.http.patch(f"/certificates/{cert['id']}", json={})
    assert res.status_code == 200 and res.json()["snis"] == ["q1.test", "q2.test"]
    before = admin.export()
    res = await admin.http.patch(f"/certificates/{uuid.uuid4()}", json={"cert": pki["rsa"].cert_pem})
    assert res.status_code == 404
    assert admin.export() == before
    res = await admin.http.patch(f"/certificates/{cert['id']}", json={"snis": ["q3.test"]})
    assert res.json()["snis"] == ["q3.test"]
    assert (await admin.http.get(f"/certificates/{other['id']}")).json()["snis"] == ["other.test"]
    res = await admin.http.patch(f"/certificates/{cert['id']}", json={"snis": ["d.test", "d.test"]})
    assert res.status_code == 400 and "is duplicated" in res.json()["message"]
    res = await admin.http.patch(f"/certificates/{cert['id']}", json={"snis": ["other.test"]})
    assert res.json()["message"] == (
        f"schema violation (snis: other.test already associated with existing certificate '{other['id']}')"
    )
    res = await admin.http.patch(f"/certificates/{cert['id']}", json={"snis": None})
    assert res.status_code == 200 and '"snis":[]' in res.text


async def test_62_delete(admin: Admin, pki: dict[str, Issued]) -> None:
    a = await create(admin, pki["rsa"], ["del1.test"])
    await create(admin, pki["rsa"], ["del2.test"])
    assert (await admin.http.delete("/certificates/del2.test")).status_code == 204
    assert (await admin.http.delete(f"/certificates/{a['id']}")).status_code == 204
    assert admin.export()["snis"] == [] and admin.export()["certificates"] == []
    res = await admin.http.delete("/certificates/del3.test")
    assert (res.status_code, res.json()) == (404, {"message": "SNI not found"})


async def test_63_to_65_nested_snis(admin: Admin, pki: dict[str, Issued]) -> None:
    cert = await create(admin, pki["rsa"], ["nest.test"])
    res = await admin.http.post(f"/certificates/{uuid.uuid4()}/snis", json={"name": "x.test"})
    assert (res.status_code, res.json()) == (404, {"message": "Not found"})
    res = await admin.http.post("/certificates/nest.test/snis", json={"name": "nest2.test"})
    assert res.status_code == 201 and res.json()["certificate"] == {"id": cert["id"]}
    res = await admin.http.post(f"/certificates/{cert['id']}/snis", json={"name": "nest2.test"})
    assert res.status_code == 409 and res.json()["name"] == "unique constraint violation"
    res = await admin.http.get(f"/certificates/{cert['id']}/snis")
    assert sorted(s["name"] for s in res.json()["data"]) == ["nest.test", "nest2.test"]


async def test_66_to_71_snis(admin: Admin, pki: dict[str, Issued]) -> None:
    a = await create(admin, pki["rsa"])
    b = await create(admin, pki["rsa2"])
    for name in ("*.wildcard.test", "wildcard.*"):
        res = await admin.http.post("/snis", json={"name": name, "certificate": {"id": a["id"]}})
        assert res.status_code == 201, res.text
    res = await admin.http.post("/snis", json={"name": "*.wildcard.*", "certificate": {"id": a["id"]}})
    assert res.status_code == 400 and res.json()["fields"]["name"] == "only one wildcard must be specified"
    res = await admin.http.get("/snis/%2A.wildcard.test")
    assert res.status_code == 200 and res.json()["name"] == "*.wildcard.test"
    sni_id = res.json()["id"]
    assert (await admin.http.get(f"/snis/{sni_id}")).json()["name"] == "*.wildcard.test"
    res = await admin.http.put(f"/snis/{uuid.uuid4()}", json={})
    assert (
        res.json()["message"]
        == "2 schema violations (certificate: required field missing; name: required field missing)"
    )
    new_id = str(uuid.uuid4())
    res = await admin.http.put(f"/snis/{new_id}", json={"name": "put.test", "certificate": {"id": a["id"]}})
    assert res.status_code == 200 and res.json()["id"] == new_id
    res = await admin.http.patch("/snis/put.test", json={"certificate": {"id": b["id"]}})
    assert res.status_code == 200
    assert "put.test" not in (await admin.http.get(f"/certificates/{a['id']}")).json()["snis"]
    assert (await admin.http.get(f"/certificates/{b['id']}")).json()["snis"] == ["put.test"]
    assert (await admin.http.delete("/snis/put.test")).status_code == 204
    assert (await admin.http.get("/snis/put.test")).status_code == 404


async def test_72_schema_validate(admin: Admin, pki: dict[str, Issued]) -> None:
    res = await admin.http.post(
        "/schemas/certificates/validate",
        json={"cert": pki["rsa"].cert_pem, "key": pki["rsa"].key_pem, "snis": ["v.test"]},
    )
    assert (res.status_code, res.json()) == (200, {"message": "schema validation successful"})
    assert admin.export()["certificates"] == []


async def test_45_multipart_file_upload_with_curl(admin: Admin, pki: dict[str, Issued], tmp_path: Any) -> None:
    (tmp_path / "c.crt").write_text(pki["rsa"].cert_pem)
    (tmp_path / "c.key").write_text(pki["rsa"].key_pem)
    proc = await asyncio.create_subprocess_exec(
        "curl", "-sS", "--max-time", "10", "-w", "\n%{http_code}",
        "-F", f"cert=@{tmp_path / 'c.crt'}", "-F", f"key=@{tmp_path / 'c.key'}",
        "-F", "snis[1]=curl1.test", "-F", "snis[2]=curl2.test",
        f"{admin.url}/certificates",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 20)
    body, status = out.decode().rsplit("\n", 1)
    assert status == "201", body
    created = json.loads(body)
    assert created["cert"] == pki["rsa"].cert_pem and created["snis"] == ["curl1.test", "curl2.test"]
