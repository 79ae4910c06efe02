"""The ``certificates`` entity (``certificates.lua``): a serving/client certificate and its key.

``cert`` may hold a chain (leaf first); ``cert_alt``/``key_alt`` are an optional second pair of another key
type. ``snis`` is *transient*: validated here, but stored as ``snis`` rows by the store, which also
enforces the list rules of ``dao/certificates.lua`` (duplicates, SNIs owned by other certificates).
Expiry, CA flags and EKUs are deliberately not checked (Kong serves expired certificates).
"""

from __future__ import annotations

from typing import Any

from gateway.entities import pem, typedefs
from gateway.entities.entity_checks import custom_check, mutually_required
from gateway.entities.schema import Field, Schema

__all__ = ["SCHEMA"]


def _check_pair(entity: dict[str, Any]) -> str | None:
    if not pem.public_key_matches(entity["cert"], entity["key"]):
        return "certificate does not match key"
    return None


def _check_alt_pair(entity: dict[str, Any]) -> str | None:
    cert_alt, key_alt = entity.get("cert_alt"), entity.get("key_alt")
    if isinstance(cert_alt, str) and isinstance(key_alt, str) and not pem.public_key_matches(cert_alt, key_alt):
        return "alternative certificate does not match key"
    return None


def _check_alt_type(entity: dict[str, Any]) -> str | None:
    cert, cert_alt = entity.get("cert"), entity.get("cert_alt")
    if isinstance(cert, str) and isinstance(cert_alt, str) and pem.key_type(cert) == pem.key_type(cert_alt):
        return (
            "certificate and alternative certificate need to have different type (e.g. RSA and ECDSA), "
            "the provided certificates were both of the same type"
        )
    return None


SCHEMA = Schema(
    "certificates",
    [
        ("id", typedefs.uuid),
        ("created_at", typedefs.auto_timestamp_s),
        ("updated_at", typedefs.auto_timestamp_s),
        ("cert", typedefs.certificate(required=True, referenceable=True)),
        ("key", typedefs.key(required=True, referenceable=True)),
        ("cert_alt", typedefs.certificate(required=False, referenceable=True)),
        ("key_alt", typedefs.key(required=False, referenceable=True)),
        ("tags", typedefs.tags),
        ("snis", Field("array", elements=typedefs.wildcard_host, required=False, transient=True)),
    ],
    entity_checks=(
        mutually_required("cert_alt", "key_alt"),
        custom_check(("cert", "key"), _check_pair),
        custom_check(("cert_alt", "key_alt"), _check_alt_pair),
        custom_check(("cert", "cert_alt"), _check_alt_type),
    ),
    description="A PEM certificate (chain) and key, optionally with an alternative pair, and its SNIs.",
)
