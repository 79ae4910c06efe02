"""The tls-metadata-headers plugin (Kong Enterprise): the client certificate's details as upstream headers.

With ``inject_client_cert_details`` the leaf the client presented is described upstream as nginx's variables
would: the URL-encoded PEM (``$ssl_client_escaped_cert``), the serial in upper-case hex (``$ssl_client_serial``),
the issuer and subject DNs in RFC 2253 form (``$ssl_client_i_dn`` / ``$ssl_client_s_dn``) and the SHA-1
fingerprint in lower-case hex (``$ssl_client_fingerprint``). Header names are configurable. It only has something
to say when the handshake requested a certificate (mtls-auth or tls-handshake-modifier on the same SNI), and it
runs after mtls-auth (lower priority), so a failed authentication never reaches it. Client-supplied copies of the
configured headers are always removed. The values are computed once per connection.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import quote

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gateway.plugins.base import BuildContext, Plugin, PluginContext, register_handler
from gateway.plugins.mtls_auth.names import rfc2253
from gateway.tls.engine.x509 import sha1_fingerprint

__all__ = ["DEFAULT_HEADERS", "NAME", "TlsMetadataHeaders", "certificate_details"]

NAME: Final = "tls-metadata-headers"
DEFAULT_HEADERS: Final = {
    "client_cert_header_name": "X-Client-Cert",
    "client_serial_header_name": "X-Client-Cert-Serial",
    "client_cert_issuer_dn_header_name": "X-Client-Cert-Issuer-DN",
    "client_cert_subject_dn_header_name": "X-Client-Cert-Subject-DN",
    "client_cert_fingerprint_header_name": "X-Client-Cert-Fingerprint",
}


def _serial_hex(cert: x509.Certificate) -> str:
    """``i2a_ASN1_INTEGER``: upper-case hex, an even number of digits."""
    text = f"{cert.serial_number:X}"
    return "0" + text if len(text) % 2 else text


def certificate_details(cert: x509.Certificate) -> tuple[str, str, str, str, str]:
    """(escaped PEM, serial, issuer DN, subject DN, SHA-1 fingerprint) of a certificate."""
    pem = cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
    return (
        quote(pem, safe=""),
        _serial_hex(cert),
        rfc2253(cert.issuer),
        rfc2253(cert.subject),
        sha1_fingerprint(cert),
    )


@register_handler
class TlsMetadataHeaders(Plugin):
    """One compiled instance: the header names, in the order of ``certificate_details``."""

    NAME = NAME
    PRIORITY = 996
    NO_CONSUMER = True

    __slots__ = ("enabled", "names")

    def __init__(self, row: Mapping[str, Any], build: BuildContext) -> None:
        super().__init__(row)
        config: Mapping[str, Any] = row.get("config") or {}
        self.enabled = bool(config.get("inject_client_cert_details"))
        self.names: tuple[str, ...] = tuple(str(config.get(key) or default) for key, default in DEFAULT_HEADERS.items())

    @classmethod
    def compile(cls, row: Mapping[str, Any], build: BuildContext) -> TlsMetadataHeaders:
        return cls(row, build)

    def access(self, ctx: PluginContext) -> None:
        if not self.enabled:
            return None
        cache = ctx.conn_cache
        values = cache.get(self) if cache is not None else None
        if values is None:
            tls = ctx.tls
            cert = tls.peer_certificate if tls is not None else None
            values = certificate_details(cert) if cert is not None else ()
            if cache is not None:
                cache[self] = values
        upstream = ctx.upstream_headers
        if values:
            for name, value in zip(self.names, values, strict=True):
                upstream[name.lower()] = (name, value)
        else:
            for name in self.names:
                upstream[name.lower()] = (name, None)
        return None
