"""Names read from a client certificate: nginx's ``$ssl_client_s_dn``, the SAN values, the CN.

``rfc2253`` reproduces ``X509_NAME_print_ex(..., XN_FLAG_RFC2253)``, which nginx uses for ``$ssl_client_s_dn``
and ``$ssl_client_i_dn`` (so ``X-Client-Cert-DN`` reads exactly as in Kong): RDNs last to first, separated by
``,`` (multi-valued RDNs by ``+``), OpenSSL's short attribute names (``CN``, ``emailAddress``...), unknown
attributes as ``<dotted oid>=#<hex DER>``, and values escaped as ``ASN1_STRFLGS_RFC2253`` does: ``,+"\\<>;``
with a backslash, a leading ``#`` or space and a trailing space likewise, control characters and every byte
above 0x7f (of the UTF-8 form) as ``\\XX``.
"""

from __future__ import annotations

from typing import Any, Final

from cryptography import x509
from cryptography.x509.oid import NameOID, ObjectIdentifier

__all__ = ["common_name", "rfc2253", "san_values", "subject_names"]

_SHORT_NAMES: Final[dict[str, str]] = {
    NameOID.COMMON_NAME.dotted_string: "CN",
    NameOID.COUNTRY_NAME.dotted_string: "C",
    NameOID.LOCALITY_NAME.dotted_string: "L",
    NameOID.STATE_OR_PROVINCE_NAME.dotted_string: "ST",
    NameOID.STREET_ADDRESS.dotted_string: "street",
    NameOID.ORGANIZATION_NAME.dotted_string: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME.dotted_string: "OU",
    NameOID.SERIAL_NUMBER.dotted_string: "serialNumber",
    NameOID.SURNAME.dotted_string: "SN",
    NameOID.GIVEN_NAME.dotted_string: "GN",
    NameOID.TITLE.dotted_string: "title",
    NameOID.INITIALS.dotted_string: "initials",
    NameOID.GENERATION_QUALIFIER.dotted_string: "generationQualifier",
    NameOID.X500_UNIQUE_IDENTIFIER.dotted_string: "x500UniqueIdentifier",
    NameOID.DN_QUALIFIER.dotted_string: "dnQualifier",
    NameOID.PSEUDONYM.dotted_string: "pseudonym",
    NameOID.USER_ID.dotted_string: "UID",
    NameOID.DOMAIN_COMPONENT.dotted_string: "DC",
    NameOID.EMAIL_ADDRESS.dotted_string: "emailAddress",
    NameOID.JURISDICTION_COUNTRY_NAME.dotted_string: "jurisdictionC",
    NameOID.JURISDICTION_LOCALITY_NAME.dotted_string: "jurisdictionL",
    NameOID.JURISDICTION_STATE_OR_PROVINCE_NAME.dotted_string: "jurisdictionST",
    NameOID.BUSINESS_CATEGORY.dotted_string: "businessCategory",
    NameOID.POSTAL_ADDRESS.dotted_string: "postalAddress",
    NameOID.POSTAL_CODE.dotted_string: "postalCode",
    NameOID.ORGANIZATION_IDENTIFIER.dotted_string: "organizationIdentifier",
    ObjectIdentifier("2.5.4.41").dotted_string: "name",
}

_SPECIAL: Final = frozenset(',+"\\<>;')


def _escape(value: str) -> str:
    raw = value.encode("utf-8")
    out: list[str] = []
    last = len(raw) - 1
    for i, byte in enumerate(raw):
        ch = chr(byte)
        if byte > 0x7F or byte < 0x20 or byte == 0x7F:
            out.append(f"\\{byte:02X}")
        elif ch in _SPECIAL or (i == 0 and ch in "# ") or (i == last and ch == " "):
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def _attribute(attr: x509.NameAttribute[Any]) -> str:
    short = _SHORT_NAMES.get(attr.oid.dotted_string)
    value = attr.value
    if short is None:
        # XN_FLAG_DUMP_UNKNOWN_FIELDS: the DER of the value, as hex
        raw = value if isinstance(value, bytes) else value.encode("utf-8")
        tag = 0x0C  # UTF8String
        der = bytes([tag, len(raw)]) + raw if len(raw) < 128 else bytes([tag, 0x81, len(raw)]) + raw
        return f"{attr.oid.dotted_string}=#{der.hex().upper()}"
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    return f"{short}={_escape(text)}"


def rfc2253(name: x509.Name) -> str:
    """``X509_NAME_print_ex(..., XN_FLAG_RFC2253)``: ``CN=foo@example.com,O=Kong Testing,ST=California,C=US``."""
    return ",".join("+".join(_attribute(attr) for attr in rdn) for rdn in reversed(name.rdns))


def common_name(cert: x509.Certificate) -> str | None:
    """The (last, most specific) CN of the subject, as OpenSSL's ``X509_NAME_get_index_by_NID`` finds it first."""
    values = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not values:
        return None
    value = values[0].value
    return value.decode("latin-1") if isinstance(value, bytes) else value


def san_values(cert: x509.Certificate) -> list[str]:
    """Every subjectAltName value in certificate order: DNS names, emails, URIs, IP addresses (text form)."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    names: list[str] = []
    for general in ext.value:
        if isinstance(general, x509.DNSName | x509.RFC822Name | x509.UniformResourceIdentifier):
            names.append(general.value)
        elif isinstance(general, x509.IPAddress):
            names.append(str(general.value))
        elif isinstance(general, x509.DirectoryName):
            names.append(rfc2253(general.value))
    return names


def subject_names(cert: x509.Certificate) -> list[str]:
    """The names a certificate is matched by: all SAN values, then the CN (mtls-auth's order)."""
    names = san_values(cert)
    cn = common_name(cert)
    if cn is not None:
        names.append(cn)
    return names
