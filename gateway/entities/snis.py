"""The ``snis`` entity (``snis.lua``): a server name (exact or wildcard) bound to one certificate.

Names are wildcard hosts (``*.example.com``, ``example.*``, ``*``), unique, never lower-cased.
"""

from __future__ import annotations

from gateway.entities import typedefs
from gateway.entities.schema import Field, Schema

__all__ = ["SCHEMA"]

SCHEMA = Schema(
    "snis",
    [
        ("id", typedefs.uuid),
        ("name", typedefs.wildcard_host(required=True, unique=True)),
        ("created_at", typedefs.auto_timestamp_s),
        ("updated_at", typedefs.auto_timestamp_s),
        ("tags", typedefs.tags),
        # Kong's certificates DAO deletes a certificate's SNIs before the certificate: a cascade
        (
            "certificate",
            Field(
                "foreign",
                reference="certificates",
                required=True,
                on_delete="cascade",
                description="The certificate served for this name.",
            ),
        ),
    ],
    endpoint_key="name",
    description="A TLS server name and the certificate served for it.",
)
