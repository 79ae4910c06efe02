"""Which certificates report their notAfter, and under which labels."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.observability.cert_expiry import ExpiryCache, expiry_samples, not_after
from tests.fixtures.certs import days, make_ca, make_cert


@dataclass
class Pair:
    cert: bytes
    source: str


def ts(issued: object) -> float:
    return issued.cert.not_valid_after_utc.timestamp()  # type: ignore[attr-defined]


def test_entities_defaults_and_client_certificate_are_all_reported() -> None:
    root = make_ca("Expiry Root", key_type="ec")
    soon = make_cert("soon.test", issuer=root, not_after=days(2), key_type="ec")
    later = make_cert("later.test", issuer=root, not_after=days(90), key_type="ec")
    alt = make_cert("later.test", issuer=root, not_after=days(30))
    lone = make_cert("lone.test", issuer=root, not_after=days(10), key_type="ec")
    client = make_cert("client", issuer=root, not_after=days(5), key_type="ec")
    rows: list[dict[str, Any]] = [
        {"id": "c1", "cert": soon.chain_pem, "snis": ["b.soon.test", "a.soon.test"]},
        {"id": "c2", "cert": later.cert_pem, "cert_alt": alt.cert_pem, "snis": ["later.test"]},
        {"id": "c3", "cert": lone.cert_pem, "snis": []},
        {"id": "c4", "cert": "not a pem"},
    ]
    generated = [Pair(later.cert_pem.encode(), "/p/ssl/kong-default.crt"), Pair(b"junk", "/p/ssl/x.crt")]
    samples = dict(expiry_samples(rows, generated, False, client.cert_pem.encode()))
    assert samples == {
        ("c1", "a.soon.test"): ts(soon),  # the leaf's notAfter, not the chain's CA's
        ("c1", "b.soon.test"): ts(soon),
        ("c2", "later.test"): ts(later),
        ("c2/cert_alt", "later.test"): ts(alt),
        ("c3", ""): ts(lone),
        ("kong-default", ""): ts(later),
        ("client_ssl_cert", ""): ts(client),
    }
    from_setting = dict(expiry_samples([], [Pair(soon.cert_pem.encode(), "ssl_cert")] * 2, True))
    assert from_setting == {("ssl_cert", ""): ts(soon), ("ssl_cert[1]", ""): ts(soon)}


def test_not_after_of_nothing_is_none() -> None:
    assert not_after(None) is None and not_after("") is None and not_after(b"-----BEGIN CERTIFICATE-----") is None


def test_the_cache_holds_one_version() -> None:
    cache = ExpiryCache()
    assert cache.lookup(1) is None
    cache.store(1, [(("a", ""), 1.0)])
    assert cache.lookup(1) == [(("a", ""), 1.0)]
    assert cache.lookup(2) is None
