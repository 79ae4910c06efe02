"""The ``ca_certificates`` entity (``ca_certificates.lua``): one trusted CA certificate.

Checks, in Kong's order, the first failure winning: one certificate only; not expired; ``CA:TRUE``.
``cert_digest`` (lower-case hex SHA-256 of the DER) is computed on every write that carries ``cert``
(``compute_digest``) and is unique, which is how a duplicate upload gets Kong's 409.
"""

from __future__ import annotations

import datetime
from typing import Any

from gateway.entities import pem, typedefs
from gateway.entities.entity_checks import custom_check
from gateway.entities.schema import Field, Schema

__all__ = ["SCHEMA", "compute_digest"]


def _check_ca(entity: dict[str, Any]) -> str | None:
    cert = entity["cert"]
    seen = cert.find(pem.CERT_TAG)
    if seen != -1 and cert.find(pem.CERT_TAG, seen + len(pem.CERT_TAG) + 1) != -1:
        return "please submit only one certificate at a time"
    if pem.cert_not_after(cert) < datetime.datetime.now(datetime.UTC):
        return 'certificate expired, "Not After" time is in the past'
    if not pem.cert_is_ca(cert):
        return 'certificate does not appear to be a CA because it is missing the "CA" basic constraint'
    return None


def compute_digest(row: dict[str, Any]) -> None:
    """Kong's ``on_write`` transformation: set ``cert_digest`` from ``cert`` when ``cert`` is valid."""
    cert = row.get("cert")
    if isinstance(cert, str):
        try:
            row["cert_digest"] = pem.cert_digest(cert)
        except pem.PemError:
            pass


SCHEMA = Schema(
    "ca_certificates",
    [
        ("id", typedefs.uuid),
        ("created_at", typedefs.auto_timestamp_s),
        ("updated_at", typedefs.auto_timestamp_s),
        ("cert", typedefs.certificate(required=True)),
        ("cert_digest", Field("string", unique=True)),
        ("tags", typedefs.tags),
    ],
    entity_checks=(custom_check(("cert",), _check_ca),),
    description="A trusted CA certificate, referenced by id from services and plugins.",
)
