"""``CertificateIndex``: Kong's lookup order, invalid SNIs, unloadable certificates and rebuilds (no sockets)."""

from __future__ import annotations

import io
from typing import Any

import pytest
from OpenSSL import SSL

from gateway.observability.errorlog import ErrorLog
from gateway.settings import ConfigError
from gateway.tls.served.certificates import CertificateIndex, base_context, make_sni_callback
from tests.unit.tls.served.conftest import Pki, certificate_row, sni_rows
from tests.unit.tls.served.harness import memory_handshake

Rows = tuple[list[dict[str, Any]], list[dict[str, Any]]]


@pytest.fixture(scope="module")
def index(pki: Pki, ssl_spec_rows: Rows) -> CertificateIndex:
    certificates, snis = ssl_spec_rows
    return CertificateIndex.build(certificates, snis, pki.defaults)


@pytest.mark.parametrize(
    ("sni", "certificate_id", "matched"),
    [
        ("test.com", None, None),  # 21: no match -> default
        ("ssl1.com", "c-example", "ssl1.com"),  # 22
        ("example.com", "c-example", "example.com"),  # 22
        ("test.wildcard.com", "c-alt", "*.wildcard.com"),  # 23: prefix beats suffix test.wildcard.*
        ("wildcard.eu", "c-alt", "wildcard.*"),  # 24: suffix
        ("wildcard.org", "c-alt-alt", "wildcard.org"),  # 25: exact beats wildcard.*
        ("test.wildcard.org", "c-alt-alt", "test.wildcard.*"),  # 26: suffix test.wildcard.*
        ("test.www.wildcard.com", "c-alt-alt", "*.www.wildcard.com"),  # 27: one label per wildcard
        ("EXAMPLE.COM", None, None),  # no case folding
        ("example.com.", None, None),  # no trailing-dot folding either
    ],
)
def test_kong_ssl_spec_lookup_order(
    index: CertificateIndex, sni: str, certificate_id: str | None, matched: str | None
) -> None:
    entry = index.select(sni)
    assert entry.certificate_id == certificate_id
    assert entry.sni == matched
    assert entry.error is None
    if certificate_id is None:
        assert entry is index.default


def test_no_sni_is_default_even_with_catch_all(pki: Pki) -> None:
    row = certificate_row("c-star", pki.example_rsa, ["*"])
    index = CertificateIndex.build([row], sni_rows(row), pki.defaults)
    assert index.select(None) is index.default  # 20: "*" is never consulted without an SNI
    assert index.select("example.com").certificate_id == "c-star"  # 40
    assert index.select("example.com").sni == "*"
    assert index.select("localhost").certificate_id == "c-star"


def test_exact_beats_catch_all(pki: Pki, ssl_spec_rows: Rows) -> None:
    certificates, snis = ssl_spec_rows
    star = certificate_row("c-star", pki.alt, ["*"])
    index = CertificateIndex.build([*certificates, star], [*snis, *sni_rows(star)], pki.defaults)
    assert index.select("example.com").certificate_id == "c-example"
    assert index.select("wildcard.eu").certificate_id == "c-alt"
    assert index.select("nothing.test").certificate_id == "c-star"


INVALID = [
    ("a.example.com:600", "must not have a port"),
    ("a.example.com:88888", "must not have a port"),
    ("127.0.0.1", "must not be an IP"),
    ("127.0.0.1:443", "must not be an IP"),
    ("256.256.256.256", "invalid value: "),
    ("*.exam*le.com", "only one wildcard must be specified"),
    ("a.exam*le.com", "wildcard must be leftmost or rightmost character"),
]


@pytest.mark.parametrize(("sni", "reason"), INVALID)
def test_invalid_sni_logs_debug_line_and_serves_default(
    pki: Pki, debug_log: tuple[ErrorLog, io.StringIO], sni: str, reason: str
) -> None:
    log, stream = debug_log
    index = CertificateIndex.build([], [], pki.defaults)  # 41: Kong's setup has no certificates at all
    assert index.select(sni, log) is index.default
    text = stream.getvalue()
    assert f"invalid SNI '{sni}', {reason}" in text
    assert "serving default SSL certificate" in text
    assert "[error]" not in text
    assert "[debug]" in text


def test_valid_sni_logs_no_invalid_line(pki: Pki, debug_log: tuple[ErrorLog, io.StringIO]) -> None:
    log, stream = debug_log
    index = CertificateIndex.build([], [], pki.defaults)
    assert index.select("a.example.com", log) is index.default
    assert "invalid SNI" not in stream.getvalue()
    assert "[error]" not in stream.getvalue()


def test_invalid_sni_lines_need_debug_level(pki: Pki) -> None:
    stream = io.StringIO()
    index = CertificateIndex.build([], [], pki.defaults)
    assert index.select("127.0.0.1", ErrorLog(None, "info", stream=stream)) is index.default
    assert stream.getvalue() == ""


def test_invalid_sni_still_reaches_later_valid_candidates(pki: Pki, debug_log: tuple[ErrorLog, io.StringIO]) -> None:
    """Kong's loop only skips the invalid candidate: '*' (or a valid suffix wildcard) still matches after it."""
    log, stream = debug_log
    star = certificate_row("c-star", pki.alt, ["*"])
    index = CertificateIndex.build([star], sni_rows(star), pki.defaults)
    assert index.select("127.0.0.1", log).certificate_id == "c-star"
    assert "invalid SNI '127.0.0.1', must not be an IP" in stream.getvalue()
    suffix = certificate_row("c-suffix", pki.alt_alt, ["a.example.*"])
    index = CertificateIndex.build([suffix], sni_rows(suffix), pki.defaults)
    assert index.select("a.example.com:600", log).certificate_id == "c-suffix"


def test_unloadable_certificate_aborts_only_its_snis(
    pki: Pki, ssl_spec_rows: Rows, debug_log: tuple[ErrorLog, io.StringIO]
) -> None:
    log, stream = debug_log
    certificates, snis = ssl_spec_rows
    broken = {
        "id": "c-broken",
        "cert": "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n",
        "key": pki.alt.key_pem,
        "snis": ["broken.test"],
    }
    index = CertificateIndex.build([*certificates, broken], [*snis, *sni_rows(broken)], pki.defaults, log=log)
    assert "certificate c-broken could not be loaded" in stream.getvalue()
    assert "broken.test" in stream.getvalue()
    assert set(index.errors) == {"c-broken"}
    entry = index.select("broken.test")
    assert entry.certificate_id == "c-broken"
    assert entry.error is not None and entry.error.startswith("could not parse PEM certificate")
    assert entry.context is index.abort_context
    assert index.select("example.com").error is None


def test_mismatched_key_aborts(pki: Pki) -> None:
    row = certificate_row("c-mismatch", pki.alt, ["mismatch.test"])
    row["key"] = pki.alt_alt.key_pem
    index = CertificateIndex.build([row], sni_rows(row), pki.defaults)
    entry = index.select("mismatch.test")
    assert entry.error is not None and "private key" in entry.error


def test_sni_of_a_missing_certificate_aborts(pki: Pki) -> None:
    index = CertificateIndex.build([], [{"name": "ghost.test", "certificate": {"id": "gone"}}], pki.defaults)
    entry = index.select("ghost.test")
    assert entry.error == "no SSL certificate configured for sni: ghost.test"


def test_aborted_handshake_logs_kongs_error(pki: Pki, debug_log: tuple[ErrorLog, io.StringIO]) -> None:
    log, stream = debug_log
    broken = {"id": "c-broken", "cert": "garbage", "key": "garbage", "snis": ["broken.test"]}
    index = CertificateIndex.build([broken], sni_rows(broken), pki.defaults)
    ctx = base_context(None, index, make_sni_callback(lambda: index, log))
    with pytest.raises(SSL.Error):
        memory_handshake(ctx, b"broken.test")
    assert "[error]" in stream.getvalue()
    assert "[ssl] could not parse PEM certificate" in stream.getvalue()
    _, _, holder = memory_handshake(ctx, b"other.test")  # the listener itself is unaffected
    assert holder.server_certificate is index.default


def test_names_from_certificate_rows_and_sni_rows_agree(pki: Pki) -> None:
    """Declarative nesting lists SNIs on the certificate; SNI rows win when both name one."""
    nested = certificate_row("c-nested", pki.alt, [])
    nested["snis"] = [{"name": "nested.test"}, "plain.test"]
    other = certificate_row("c-other", pki.alt_alt, [])
    index = CertificateIndex.build(
        [nested, other], [{"name": "plain.test", "certificate": {"id": "c-other"}}], pki.defaults
    )
    assert index.select("nested.test").certificate_id == "c-nested"
    assert index.select("plain.test").certificate_id == "c-other"
    assert index.names == ["nested.test", "plain.test"]


def test_rebuild_reuses_unchanged_contexts(pki: Pki, ssl_spec_rows: Rows) -> None:
    certificates, snis = ssl_spec_rows
    first = CertificateIndex.build(certificates, snis, pki.defaults)
    changed = [dict(certificates[0]), *certificates[1:]]
    changed[0]["cert"], changed[0]["key"] = pki.alt.chain_pem, pki.alt.key_pem
    changed[0]["cert_alt"] = changed[0]["key_alt"] = None
    second = CertificateIndex.build(changed, snis, pki.defaults, previous=first)
    assert second.select("wildcard.eu").context is first.select("wildcard.eu").context  # untouched: reused
    assert second.select("example.com").context is not first.select("example.com").context  # edited: rebuilt


def test_no_default_certificate_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="ssl_certificate"):
        CertificateIndex.build([], [], ())
