"""Certificates of Kong's ``06-ssl_spec`` setup, built once per session (RSA key generation is the slow part)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import pytest

from gateway.observability.errorlog import ErrorLog
from gateway.tls.served.defaults import PemPair, generate_default_pair
from tests.fixtures.certs import Issued, make_ca, make_cert


@dataclass(frozen=True)
class Pki:
    root: Issued
    intermediate: Issued
    ecdsa_intermediate: Issued
    example_rsa: Issued  # CN ssl-example.com, RSA, under the RSA intermediate
    example_ecdsa: Issued  # CN ssl-example.com, ECDSA, under its own intermediate (a different chain)
    alt: Issued  # CN ssl-alt.com
    alt_alt: Issued  # CN ssl-alt-alt.com
    defaults: tuple[PemPair, ...]  # Kong's generated pair: RSA + ECDSA, CN localhost


@pytest.fixture(scope="session")
def pki() -> Pki:
    root = make_ca("Kong Testing Root CA")
    inter = make_ca("Kong Testing Intermediate CA", issuer=root)
    ec_inter = make_ca("Kong Testing ECDSA Intermediate CA", issuer=root, key_type="ec")
    return Pki(
        root=root,
        intermediate=inter,
        ecdsa_intermediate=ec_inter,
        example_rsa=make_cert("ssl-example.com", issuer=inter),
        example_ecdsa=make_cert("ssl-example.com", issuer=ec_inter, key_type="ec"),
        alt=make_cert("ssl-alt.com", issuer=inter),
        alt_alt=make_cert("ssl-alt-alt.com", issuer=inter),
        defaults=(generate_default_pair("rsa"), generate_default_pair("ecdsa")),
    )


def certificate_row(cert_id: str, leaf: Issued, snis: list[str], alt: Issued | None = None) -> dict[str, Any]:
    """A certificate row shaped like the Admin API's JSON."""
    return {
        "id": cert_id,
        "cert": leaf.chain_pem,
        "key": leaf.key_pem,
        "cert_alt": alt.chain_pem if alt is not None else None,
        "key_alt": alt.key_pem if alt is not None else None,
        "snis": sorted(snis),
        "tags": None,
    }


def sni_rows(*certificates: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``snis`` rows that belong to certificate rows."""
    return [
        {"id": f"{row['id']}-{name}", "name": name, "certificate": {"id": row["id"]}}
        for row in certificates
        for name in row["snis"]
    ]


@pytest.fixture(scope="session")
def ssl_spec_rows(pki: Pki) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Kong's 06-ssl_spec certificates: example (RSA+ECDSA), alt and alt-alt with their SNIs."""
    certificates = [
        certificate_row("c-example", pki.example_rsa, ["example.com", "ssl1.com"], alt=pki.example_ecdsa),
        certificate_row("c-alt", pki.alt, ["*.wildcard.com", "wildcard.*"]),
        certificate_row("c-alt-alt", pki.alt_alt, ["wildcard.org", "test.wildcard.*", "*.www.wildcard.com"]),
    ]
    return certificates, sni_rows(*certificates)


@pytest.fixture
def debug_log() -> tuple[ErrorLog, io.StringIO]:
    stream = io.StringIO()
    return ErrorLog(None, "debug", stream=stream), stream
