"""``gateway doctor sni``'s tables and the CA names read from a CertificateRequest."""

from __future__ import annotations

from cryptography import x509
from cryptography.x509.oid import NameOID

from gateway.doctor.sni import RULE_WORDS, _ca_name
from gateway.plugins.mtls_auth.names import rfc2253
from gateway.tls.served.trace import ServedRule


def test_every_rule_of_kongs_sni_order_has_its_words() -> None:
    assert set(RULE_WORDS) == {rule.value for rule in ServedRule}
    for rule, words in RULE_WORDS.items():
        assert words.startswith(f"{rule}: ")
        assert "{" not in words.format(entity="*.x.test")


def test_a_received_ca_name_reads_as_the_admin_api_writes_it() -> None:
    """OpenSSL gives a name's attributes in DER order (``X509_NAME`` entries); RFC 2253 lists them reversed."""
    name = x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Kong"), x509.NameAttribute(NameOID.COMMON_NAME, "Clients Root")]
    )
    received = [(b"O", b"Kong"), (b"CN", b"Clients Root")]
    assert _ca_name(received) == rfc2253(name) == "CN=Clients Root,O=Kong"


def test_an_attribute_without_a_table_entry_is_rendered_as_openssl_names_it() -> None:
    assert _ca_name([(b"CN", b"Root"), (b"title", b"Boss")]) == "title=Boss,CN=Root"
