"""The ``mtls_auth_credentials`` entity (Kong Enterprise mtls-auth): a manual subject -> consumer mapping.

``subject_name`` is matched against the client certificate; ``ca_certificate`` optionally restricts the
mapping to certificates issued by that CA. Both foreign keys cascade on delete.
"""

from __future__ import annotations

from gateway.entities import typedefs
from gateway.entities.schema import Field, Schema

__all__ = ["SCHEMA"]

SCHEMA = Schema(
    "mtls_auth_credentials",
    [
        ("id", typedefs.uuid),
        ("created_at", typedefs.auto_timestamp_s),
        ("consumer", Field("foreign", reference="consumers", required=True, on_delete="cascade")),
        ("subject_name", Field("string", required=True, description="The subject name of the certificate.")),
        ("ca_certificate", Field("foreign", reference="ca_certificates", on_delete="cascade")),
        ("tags", typedefs.tags),
    ],
    description="Maps a client certificate subject (optionally per CA) to a consumer.",
)
