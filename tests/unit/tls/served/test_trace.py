"""``gateway.tls.served.trace``: the rule is read off the entry ``CertificateIndex.select`` returned."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gateway.tls.served.certificates import CertificateIndex
from gateway.tls.served.trace import ServedRule, served_rule
from tests.unit.tls.served.conftest import Pki, certificate_row, sni_rows


@pytest.fixture(scope="module")
def index(pki: Pki) -> CertificateIndex:
    rows = [
        certificate_row("exact", pki.example_rsa, ["exact.test"], alt=pki.example_ecdsa),
        certificate_row("prefix", pki.alt, ["*.wild.test"]),
        certificate_row("suffix", pki.alt_alt, ["www.example.*"]),
        certificate_row("star", pki.alt, ["*"]),
    ]
    generated = tuple(replace(pair, generated=True) for pair in pki.defaults)
    return CertificateIndex.build(rows, sni_rows(*rows), generated)


@pytest.mark.parametrize(
    ("sni", "rule", "entity"),
    [
        ("exact.test", ServedRule.EXACT, "exact.test"),
        ("a.wild.test", ServedRule.WILDCARD_PREFIX, "*.wild.test"),
        ("www.example.org", ServedRule.WILDCARD_SUFFIX, "www.example.*"),
        ("a.b.wild.test", ServedRule.CATCH_ALL, "*"),  # a wildcard covers one label only
        ("*.wild.test", ServedRule.EXACT, "*.wild.test"),  # a literal wildcard SNI is Kong's exact hit
        (None, ServedRule.GENERATED_DEFAULT, None),  # no SNI: the default, never "*"
    ],
)
def test_rules_in_kongs_order(index: CertificateIndex, sni: str | None, rule: ServedRule, entity: str | None) -> None:
    entry = index.select(sni)
    assert entry.sni == entity
    assert served_rule(sni, entry, index) is rule


def test_a_default_from_ssl_cert(pki: Pki) -> None:
    index = CertificateIndex.build([], [], pki.defaults)  # pairs read from ssl_cert are not marked generated
    assert served_rule("anything.test", index.select("anything.test"), index) is ServedRule.SSL_CERT
