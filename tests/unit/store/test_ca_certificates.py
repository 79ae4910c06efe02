"""CA certificates (reference 2, cases 73-82)."""

from __future__ import annotations

import hashlib
import uuid

from cryptography.hazmat.primitives.serialization import Encoding

from tests.fixtures.certs import days, make_ca


def test_crud_and_digest(db, pki) -> None:
    dao = db.dao("ca_certificates")
    assert dao.page() == ([], None)
    ca = dao.insert({"cert": pki.root.cert_pem})
    assert ca["cert"] == pki.root.cert_pem
    assert ca["cert_digest"] == hashlib.sha256(pki.root.cert.public_bytes(Encoding.DER)).hexdigest()
    assert dao.select(ca["id"]) == ca
    inter = dao.insert({"cert": pki.inter.cert_pem})  # intermediates are fine when CA:TRUE
    assert inter["cert_digest"] != ca["cert_digest"]
    patched = dao.update(ca["id"], {"cert": pki.other_root.cert_pem, "tags": ["t"]})
    assert patched["cert_digest"] == hashlib.sha256(pki.other_root.cert.public_bytes(Encoding.DER)).hexdigest()
    assert patched["updated_at"] >= ca["updated_at"] and patched["created_at"] == ca["created_at"]
    new_id = str(uuid.uuid4())
    put = dao.upsert(new_id, {"cert": pki.root.cert_pem})
    assert put["id"] == new_id and dao.select(new_id) == put


def test_rejections(db, pki, rejected) -> None:
    dao = db.dao("ca_certificates")
    assert rejected(dao.insert, {}).message == "schema violation (cert: required field missing)"
    not_ca = rejected(dao.insert, {"cert": pki.leaf_only.cert_pem})
    assert not_ca.message == (
        'schema violation (certificate does not appear to be a CA because it is missing the "CA" basic constraint)'
    )
    expired = make_ca("Expired", not_before=days(-10), not_after=days(-1))
    err = rejected(dao.insert, {"cert": expired.cert_pem})
    assert err.message == 'schema violation (certificate expired, "Not After" time is in the past)'
    err = rejected(dao.insert, {"cert": pki.root.cert_pem + pki.other_root.cert_pem})
    assert err.message == "schema violation (please submit only one certificate at a time)"
    ca = dao.insert({"cert": pki.root.cert_pem})
    assert rejected(dao.update, ca["id"], {"cert": expired.cert_pem}).code == 2
    assert rejected(dao.upsert, ca["id"], {"cert": pki.leaf_only.cert_pem}).code == 2
    dup = rejected(dao.insert, {"cert": pki.root.cert_pem})
    assert dup.http_status == 409
    assert dup.to_json() == {
        "code": 5,
        "name": "unique constraint violation",
        "message": f"UNIQUE violation detected on '{{cert_digest=\"{ca['cert_digest']}\"}}'",
        "fields": {"cert_digest": ca["cert_digest"]},
    }


def test_delete_refused_while_referenced(db, pki, rejected) -> None:
    cas = db.dao("ca_certificates")
    ca = cas.insert({"cert": pki.root.cert_pem})
    service = db.dao("services").insert({"url": "https://up.test", "tls_verify": True, "ca_certificates": [ca["id"]]})
    err = rejected(cas.delete, ca["id"])
    assert err.code == 19 and err.http_status == 400 and err.name == "referenced by others"
    assert err.message == f"ca certificate {ca['id']} is still referenced by services (id = {service['id']})"
    db.dao("services").delete(service["id"])
    plugin = db.dao("plugins").insert({"name": "mtls-auth", "config": {"ca_certificates": [ca["id"]]}})
    err = rejected(cas.delete, ca["id"])
    assert err.message == f"ca certificate {ca['id']} is still referenced by plugins (id = {plugin['id']})"
    db.dao("plugins").delete(plugin["id"])
    assert cas.delete(ca["id"]) is True


def test_service_ca_ids_are_not_foreign_key_checked(db) -> None:
    missing = str(uuid.uuid4())
    service = db.dao("services").insert({"url": "https://up.test", "ca_certificates": [missing]})
    assert service["ca_certificates"] == [missing]
