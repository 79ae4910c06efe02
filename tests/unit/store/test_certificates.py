"""Certificates and SNIs with Kong's DAO rules (reference 1.1, 1.2 and cases 42-71)."""

from __future__ import annotations

import uuid

import pytest

from gateway.entities.errors import NotFound


def test_put_empty_certificate_exact_error(db, rejected) -> None:
    err = rejected(db.dao("certificates").upsert, str(uuid.uuid4()), {})
    assert err.http_status == 400
    assert err.to_json() == {
        "code": 2,
        "name": "schema violation",
        "message": "2 schema violations (cert: required field missing; key: required field missing)",
        "fields": {"cert": "required field missing", "key": "required field missing"},
    }


def test_insert_many_snis_sorted_and_alt_null(db, pki) -> None:
    names = [f"n{i:03d}.example.com" for i in range(150)]
    shuffled = names[75:] + names[:75]
    cert = db.dao("certificates").insert({**pki.pair(), "snis": shuffled})
    assert cert["snis"] == names
    assert cert["cert_alt"] is None and cert["key_alt"] is None
    rows, _ = db.dao("certificates").page()
    assert rows[0]["snis"] == names
    assert len(db.dao("snis").page(size=1000)[0]) == 150


def test_insert_without_snis_has_empty_list(db, pki) -> None:
    cert = db.dao("certificates").insert(pki.pair())
    assert cert["snis"] == []
    assert db.dao("certificates").select(cert["id"])["snis"] == []


def test_duplicated_sni_in_request(db, pki, rejected) -> None:
    err = rejected(db.dao("certificates").insert, {**pki.pair(), "snis": ["a.test", "b.test", "a.test"]})
    assert err.message == "schema violation (snis: a.test is duplicated)"
    assert err.fields == {"snis": "a.test is duplicated"}


def test_sni_owned_by_another_certificate(db, pki, rejected) -> None:
    first = db.dao("certificates").insert({**pki.pair(), "snis": ["taken.test"]})
    err = rejected(db.dao("certificates").insert, {**pki.pair(pki.rsa2), "snis": ["new.test", "taken.test"]})
    assert err.message == (
        f"schema violation (snis: taken.test already associated with existing certificate '{first['id']}')"
    )


def test_select_by_id_and_by_sni(db, pki) -> None:
    cert = db.dao("certificates").insert(
        {**pki.pair(), "cert_alt": pki.ec.chain_pem, "key_alt": pki.ec.key_pem, "snis": ["b.test", "a.test"]}
    )
    assert db.dao("certificates").select("a.test") == cert
    assert db.dao("certificates").select(cert["id"])["snis"] == ["a.test", "b.test"]
    assert db.dao("certificates").select(str(uuid.uuid4())) is None
    assert db.dao("certificates").select("unknown.test") is None


def test_put_new_uuid_creates(db, pki) -> None:
    new_id = str(uuid.uuid4())
    cert = db.dao("certificates").upsert(new_id, {**pki.pair(), "snis": ["p.test"]})
    assert cert["id"] == new_id and cert["snis"] == ["p.test"]


def test_put_by_new_sni_adds_the_url_sni(db, pki) -> None:
    dao = db.dao("certificates")
    cert = dao.upsert("n1.test", {**pki.pair(), "snis": ["n2.test"]})
    assert cert["snis"] == ["n1.test", "n2.test"]
    again = dao.upsert("n1.test", {**pki.pair(), "snis": ["n1.test", "n2.test"]})
    assert again["id"] == cert["id"] and again["snis"] == ["n1.test", "n2.test"]


def test_put_existing_without_snis_removes_them(db, pki) -> None:
    dao = db.dao("certificates")
    cert = dao.insert({**pki.pair(), "snis": ["x.test"]})
    replaced = dao.upsert(cert["id"], pki.pair(pki.rsa2))
    assert replaced["snis"] == [] and replaced["cert"] == pki.rsa2.chain_pem
    assert replaced["created_at"] == cert["created_at"]
    assert db.dao("snis").select("x.test") is None


def test_cert_alt_without_key_alt(db, pki, rejected) -> None:
    err = rejected(db.dao("certificates").upsert, str(uuid.uuid4()), {**pki.pair(), "cert_alt": pki.ec.chain_pem})
    assert err.message == "schema violation (all or none of these fields must be set: 'cert_alt', 'key_alt')"
    assert err.fields == {"@entity": ["all or none of these fields must be set: 'cert_alt', 'key_alt'"]}


def test_mismatched_keys(db, pki, rejected) -> None:
    err = rejected(db.dao("certificates").insert, {"cert": pki.rsa.chain_pem, "key": pki.rsa2.key_pem})
    assert err.message == "schema violation (certificate does not match key)"
    err = rejected(
        db.dao("certificates").insert, {**pki.pair(), "cert_alt": pki.ec.chain_pem, "key_alt": pki.rsa2.key_pem}
    )
    assert err.message == "schema violation (alternative certificate does not match key)"
    err = rejected(
        db.dao("certificates").insert, {**pki.pair(), "cert_alt": pki.rsa2.chain_pem, "key_alt": pki.rsa2.key_pem}
    )
    assert "need to have different type (e.g. RSA and ECDSA)" in err.message


def test_patch_rules(db, pki, rejected) -> None:
    dao = db.dao("certificates")
    cert = dao.insert({**pki.pair(), "snis": ["p1.test", "p2.test"]})
    other = dao.insert({**pki.pair(pki.rsa2), "snis": ["o.test"]})
    assert dao.update(cert["id"], {}) == {**cert, "updated_at": dao.select(cert["id"])["updated_at"]}
    changed = dao.update("p1.test", pki.pair(pki.rsa2))  # by SNI, no snis: kept
    assert changed["cert"] == pki.rsa2.chain_pem and changed["snis"] == ["p1.test", "p2.test"]
    assert dao.update(cert["id"], {"snis": ["p3.test"]})["snis"] == ["p3.test"]
    assert dao.select(other["id"])["snis"] == ["o.test"]
    err = rejected(dao.update, cert["id"], {"snis": ["d.test", "d.test"]})
    assert err.message == "schema violation (snis: d.test is duplicated)"
    err = rejected(dao.update, cert["id"], {"snis": ["o.test"]})
    assert (
        err.message == f"schema violation (snis: o.test already associated with existing certificate '{other['id']}')"
    )
    assert dao.update(cert["id"], {"snis": None})["snis"] == []
    with pytest.raises(NotFound):
        dao.update(str(uuid.uuid4()), {"snis": ["z.test"]})
    with pytest.raises(NotFound) as info:
        dao.update("nobody.test", {})
    assert info.value.to_json() == {"message": "SNI not found"}
    assert db.dao("snis").select("z.test") is None


def test_delete_by_sni_and_id_cascades(db, pki) -> None:
    dao = db.dao("certificates")
    a = dao.insert({**pki.pair(), "snis": ["a.test", "a2.test"]})
    b = dao.insert({**pki.pair(), "snis": ["b.test"]})
    assert dao.delete("a.test") is True
    assert dao.delete(b["id"]) is True
    assert dao.select(a["id"]) is None and db.dao("snis").page()[0] == []
    assert dao.delete(str(uuid.uuid4())) is False
    with pytest.raises(NotFound):
        dao.delete("gone.test")


def test_delete_certificate_used_by_service_is_refused(db, pki, rejected) -> None:
    cert = db.dao("certificates").insert({**pki.pair(), "snis": ["used.test"]})
    db.dao("services").insert({"url": "https://up.test", "client_certificate": {"id": cert["id"]}})
    err = rejected(db.dao("certificates").delete, cert["id"])
    assert err.message == "an existing 'services' entity references this 'certificates' entity"


def test_snis_entity(db, pki, rejected) -> None:
    cert = db.dao("certificates").insert(pki.pair())
    other = db.dao("certificates").insert(pki.pair(pki.rsa2))
    snis = db.dao("snis")
    created = snis.insert({"name": "*.wild.test", "certificate": {"id": cert["id"]}})
    assert created["certificate"] == {"id": cert["id"]}
    assert snis.select("*.wild.test") == created == snis.select(created["id"])
    err = rejected(snis.insert, {"name": "*.wild.test", "certificate": {"id": cert["id"]}})
    assert err.http_status == 409 and err.name == "unique constraint violation"
    assert err.message == "UNIQUE violation detected on '{name=\"*.wild.test\"}'"
    err = rejected(snis.insert, {"name": "*.wildcard.*", "certificate": {"id": cert["id"]}})
    assert err.fields == {"name": "only one wildcard must be specified"}
    err = rejected(snis.upsert, str(uuid.uuid4()), {})
    assert err.message == "2 schema violations (certificate: required field missing; name: required field missing)"
    err = rejected(snis.insert, {"name": "x.test", "certificate": {"id": str(uuid.uuid4())}})
    assert err.code == 4
    moved = snis.update("*.wild.test", {"certificate": {"id": other["id"]}})
    assert moved["certificate"] == {"id": other["id"]}
    assert db.dao("certificates").select(cert["id"])["snis"] == []
    assert db.dao("certificates").select(other["id"])["snis"] == ["*.wild.test"]
    listed, _ = snis.page(filters={"certificate": other["id"]})
    assert [r["name"] for r in listed] == ["*.wild.test"]
    assert snis.delete("*.wild.test") is True and snis.select(created["id"]) is None
