"""Default certificates: Kong's generated pair (properties, reuse, modes) and ``ssl_cert`` as path/PEM/base64."""

from __future__ import annotations

import base64
import datetime
import os
import pathlib
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.settings import ConfigError, load_settings
from gateway.tls.pem_settings import read_pem_setting
from gateway.tls.served.certificates import CertificateIndex, base_context
from gateway.tls.served.defaults import (
    DEFAULT_SUBJECT,
    ensure_default_certificates,
    load_default_pairs,
)
from tests.unit.tls.served.conftest import Pki
from tests.unit.tls.served.harness import common_name, memory_handshake, peer_chain


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    prefix = tmp_path_factory.mktemp("prefix")
    ensure_default_certificates(str(prefix))
    return prefix


def _load(prefix: pathlib.Path, name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate((prefix / "ssl" / name).read_bytes())


@pytest.mark.parametrize(
    ("cert_name", "key_name", "key_class"),
    [
        ("kong-default.crt", "kong-default.key", rsa.RSAPrivateKey),
        ("kong-default-ecdsa.crt", "kong-default-ecdsa.key", ec.EllipticCurvePrivateKey),
    ],
)
def test_generated_pair_has_kongs_properties(
    generated: pathlib.Path, cert_name: str, key_name: str, key_class: type
) -> None:
    cert = _load(generated, cert_name)
    key = serialization.load_pem_private_key((generated / "ssl" / key_name).read_bytes(), password=None)
    assert isinstance(key, key_class)
    if isinstance(key, rsa.RSAPrivateKey):
        assert key.key_size == 2048
    else:
        assert isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1)
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    assert cert.public_key().public_bytes(serialization.Encoding.DER, spki) == key.public_key().public_bytes(
        serialization.Encoding.DER, spki
    )
    assert cert.subject == DEFAULT_SUBJECT == cert.issuer
    assert cert.subject.rfc4514_string() == "CN=localhost,OU=IT Department,O=Kong,L=San Francisco,ST=California,C=US"
    assert cert.version == x509.Version.v3
    assert 0 < cert.serial_number < 2**128
    basic = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca is False
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert list(eku.value) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert ski.value == x509.SubjectKeyIdentifier.from_public_key(cert.public_key())
    now = datetime.datetime.now(datetime.UTC)
    assert abs((cert.not_valid_before_utc - now).total_seconds()) < 600
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == datetime.timedelta(days=20 * 365)
    cert.verify_directly_issued_by(cert)  # self-signed


def test_key_files_are_private(generated: pathlib.Path) -> None:
    for name in ("kong-default.key", "kong-default-ecdsa.key"):
        assert stat.S_IMODE(os.stat(generated / "ssl" / name).st_mode) == 0o600
    assert not list((generated / "ssl").glob("*.tmp*"))


def test_serials_are_random(tmp_path: pathlib.Path, generated: pathlib.Path) -> None:
    ensure_default_certificates(str(tmp_path))
    assert _load(tmp_path, "kong-default.crt").serial_number != _load(generated, "kong-default.crt").serial_number


def test_generated_once_and_reused(tmp_path: pathlib.Path) -> None:
    first = ensure_default_certificates(str(tmp_path))
    before = {p.name: p.read_bytes() for p in (tmp_path / "ssl").iterdir()}
    second = ensure_default_certificates(str(tmp_path))
    assert {p.name: p.read_bytes() for p in (tmp_path / "ssl").iterdir()} == before
    assert [p.cert for p in first] == [p.cert for p in second]
    assert second[0].source == str(tmp_path / "ssl" / "kong-default.crt")


def test_broken_default_pair_is_regenerated(tmp_path: pathlib.Path) -> None:
    rsa_pair, ecdsa_pair = ensure_default_certificates(str(tmp_path))
    (tmp_path / "ssl" / "kong-default.crt").write_text("garbage")
    new_rsa, new_ecdsa = ensure_default_certificates(str(tmp_path))
    assert new_rsa.cert != rsa_pair.cert
    assert x509.load_pem_x509_certificate(new_rsa.cert).subject == DEFAULT_SUBJECT
    assert new_ecdsa.cert == ecdsa_pair.cert  # the intact pair is kept


def test_settings_without_ssl_cert_use_generated_pairs(tmp_path: pathlib.Path) -> None:
    settings = load_settings(env={}, overrides={"prefix": str(tmp_path)})
    pairs = load_default_pairs(settings)
    assert len(pairs) == 2
    assert (tmp_path / "ssl" / "kong-default-ecdsa.crt").read_bytes() == pairs[1].cert
    index = CertificateIndex.build([], [], pairs)
    client, _, _ = memory_handshake(base_context(settings, index), None)
    assert common_name(peer_chain(client)[0]) == "localhost"


def _settings_with(tmp_path: pathlib.Path, cert: str, key: str) -> list[bytes]:
    settings = load_settings(env={}, overrides={"prefix": str(tmp_path), "ssl_cert": cert, "ssl_cert_key": key})
    pairs = load_default_pairs(settings)
    assert not (tmp_path / "ssl").exists()  # nothing generated when ssl_cert is set
    return [pairs[0].cert, pairs[0].key]


def test_ssl_cert_as_path_inline_pem_and_base64(tmp_path: pathlib.Path, pki: Pki) -> None:
    chain, key = pki.alt.chain_pem, pki.alt.key_pem
    (tmp_path / "c.pem").write_text(chain)
    (tmp_path / "k.pem").write_text(key)
    expected = [chain.encode(), key.encode()]
    assert _settings_with(tmp_path, str(tmp_path / "c.pem"), str(tmp_path / "k.pem")) == expected
    inline = _settings_with(tmp_path, chain, key)
    assert [x.strip() for x in inline] == [x.strip() for x in expected]  # kong.conf values are trimmed
    b64 = base64.b64encode(chain.encode()).decode(), base64.b64encode(key.encode()).decode()
    assert _settings_with(tmp_path, *b64) == expected
    b64url = (
        base64.urlsafe_b64encode(chain.encode()).decode().rstrip("="),
        base64.urlsafe_b64encode(key.encode()).decode().rstrip("="),
    )
    assert _settings_with(tmp_path, *b64url) == expected


def test_ssl_cert_served_as_default_with_its_chain(tmp_path: pathlib.Path, pki: Pki) -> None:
    settings = load_settings(
        env={}, overrides={"prefix": str(tmp_path), "ssl_cert": pki.alt.chain_pem, "ssl_cert_key": pki.alt.key_pem}
    )
    index = CertificateIndex.build([], [], load_default_pairs(settings))
    client, _, _ = memory_handshake(base_context(settings, index), b"whatever.test")
    chain = peer_chain(client)
    assert chain == [pki.alt.cert, pki.intermediate.cert]


def test_ssl_cert_errors_use_kongs_messages(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ConfigError, match=r"^ssl_cert: failed loading certificate from not-a-cert$"):
        read_pem_setting("ssl_cert", "not-a-cert", "certificate")
    with pytest.raises(ConfigError, match=r"^ssl_cert_key: failed loading key from x$"):
        read_pem_setting("ssl_cert_key", "x", "key")
    settings = load_settings(env={}, overrides={"prefix": str(tmp_path)}).replace(
        ssl_cert=("a", "b"), ssl_cert_key=("c",)
    )
    with pytest.raises(ConfigError, match="ssl_cert was specified 2 times while ssl_cert_key was specified 1 times"):
        load_default_pairs(settings)


def test_default_pair_that_openssl_rejects_fails_the_build(pki: Pki) -> None:
    from gateway.tls.served.defaults import PemPair

    bad = PemPair(pki.alt.chain_pem.encode(), pki.alt_alt.key_pem.encode(), "ssl_cert")
    with pytest.raises(ConfigError, match=r"cannot load default SSL certificate \(ssl_cert\)"):
        CertificateIndex.build([], [], [bad])


def test_subject_attribute_order_is_kongs() -> None:
    oids = [attr.oid for attr in DEFAULT_SUBJECT]
    assert oids == [
        NameOID.COUNTRY_NAME,
        NameOID.STATE_OR_PROVINCE_NAME,
        NameOID.LOCALITY_NAME,
        NameOID.ORGANIZATION_NAME,
        NameOID.ORGANIZATIONAL_UNIT_NAME,
        NameOID.COMMON_NAME,
    ]
