"""Real handshakes on loopback: what Python's ``ssl`` and ``openssl s_client`` are served for each SNI.

Kong's ``06-ssl_spec`` cases 20-27, 40 and 41, the chain that is sent, the key type OpenSSL picks for RSA-only and
ECDSA-capable clients, ALPN, and a configuration change applying to the very next handshake.
"""

from __future__ import annotations

import io
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from OpenSSL.crypto import X509 as SslX509

from gateway.observability.errorlog import ErrorLog
from gateway.tls.served.certificates import CertificateIndex, base_context, make_sni_callback
from tests.unit.tls.served.conftest import Pki, certificate_row, sni_rows
from tests.unit.tls.served.harness import (
    TlsServer,
    common_name,
    python_client_context,
    python_handshake,
    s_client,
    tls_server,
)

Rows = tuple[list[dict[str, Any]], list[dict[str, Any]]]


@dataclass
class Listener:
    """A server whose SNI callback reads ``self.index`` on every handshake, as the runtime's snapshot."""

    index: CertificateIndex
    server: TlsServer
    stream: io.StringIO


@pytest.fixture
def listener(pki: Pki, ssl_spec_rows: Rows) -> Iterator[Listener]:
    certificates, snis = ssl_spec_rows
    index = CertificateIndex.build(certificates, snis, pki.defaults)
    stream = io.StringIO()
    log = ErrorLog(None, "debug", stream=stream)
    holder: dict[str, Listener] = {}
    ctx = base_context(None, index, make_sni_callback(lambda: holder["l"].index, log))
    with tls_server(ctx) as server:
        holder["l"] = Listener(index, server, stream)
        yield holder["l"]


@pytest.mark.parametrize(
    ("sni", "cn"),
    [
        (None, "localhost"),  # 20: no SNI -> the default certificate
        ("test.com", "localhost"),  # 21
        ("ssl1.com", "ssl-example.com"),  # 22
        ("example.com", "ssl-example.com"),  # 22
        ("test.wildcard.com", "ssl-alt.com"),  # 23
        ("wildcard.eu", "ssl-alt.com"),  # 24
        ("wildcard.org", "ssl-alt-alt.com"),  # 25
        ("test.wildcard.org", "ssl-alt-alt.com"),  # 26
        ("test.www.wildcard.com", "ssl-alt-alt.com"),  # 27
    ],
)
def test_served_certificate_per_sni_python_ssl(listener: Listener, sni: str | None, cn: str) -> None:
    leaf = python_handshake(listener.server.port, sni)
    assert common_name(leaf) == cn
    outcome = listener.server.outcome()
    assert outcome.error is None
    assert outcome.entry is not None
    assert (outcome.entry.certificate_id is None) == (cn == "localhost")


@pytest.mark.parametrize(
    ("sni", "cn"),
    [
        (None, "localhost"),
        ("test.com", "localhost"),
        ("example.com", "ssl-example.com"),
        ("test.wildcard.com", "ssl-alt.com"),
        ("test.www.wildcard.com", "ssl-alt-alt.com"),
    ],
)
def test_served_certificate_per_sni_s_client(listener: Listener, sni: str | None, cn: str) -> None:
    result = s_client(listener.server.port, sni)
    assert result.returncode == 0, result.output
    assert result.chain and common_name(result.chain[0]) == cn
    assert listener.server.outcome().error is None


def test_catch_all_entity_only_with_an_sni(pki: Pki) -> None:
    row = certificate_row("c-star", pki.example_rsa, ["*"], alt=pki.example_ecdsa)
    index = CertificateIndex.build([row], sni_rows(row), pki.defaults)
    ctx = base_context(None, index, make_sni_callback(lambda: index, ErrorLog(None, "notice", stream=io.StringIO())))
    with tls_server(ctx) as server:
        assert common_name(python_handshake(server.port, "example.com")) == "ssl-example.com"  # 40
        assert server.outcome().entry.sni == "*"  # type: ignore[union-attr]
        assert common_name(python_handshake(server.port, None)) == "localhost"
        assert server.outcome().entry.certificate_id is None  # type: ignore[union-attr]
        result = s_client(server.port, "anything.test")
        assert common_name(result.chain[0]) == "ssl-example.com"


@pytest.mark.parametrize(
    ("sni", "reason"),
    [
        ("a.example.com:600", "must not have a port"),
        ("a.example.com:88888", "must not have a port"),
        ("127.0.0.1", "must not be an IP"),
        ("127.0.0.1:443", "must not be an IP"),
        ("256.256.256.256", "invalid value: "),
        ("*.exam*le.com", "only one wildcard must be specified"),
        ("a.exam*le.com", "wildcard must be leftmost or rightmost character"),
    ],
)
def test_invalid_client_sni_gets_default_and_debug_line(listener: Listener, sni: str, reason: str) -> None:
    result = s_client(listener.server.port, sni)  # s_client sends the name verbatim (Python's ssl drops IPs)
    assert result.returncode == 0, result.output
    assert common_name(result.chain[0]) == "localhost"  # 41
    assert listener.server.outcome().error is None
    log = listener.stream.getvalue()
    assert f"invalid SNI '{sni}', {reason}" in log
    assert "[error]" not in log


def test_full_chain_sent_without_root(listener: Listener, pki: Pki) -> None:
    result = s_client(listener.server.port, "wildcard.org")
    assert [common_name(c) for c in result.chain] == ["ssl-alt-alt.com", "Kong Testing Intermediate CA"]
    assert pki.root.cert not in result.chain
    assert result.chain[1] == pki.intermediate.cert


@pytest.mark.parametrize("tls_version", ["-tls1_2", "-tls1_3"])
def test_rsa_only_client_gets_rsa_chain_ecdsa_client_gets_ecdsa_chain(
    listener: Listener, pki: Pki, tls_version: str
) -> None:
    rsa_only = s_client(listener.server.port, "example.com", tls_version, "-sigalgs", "RSA-PSS+SHA256:RSA+SHA256")
    assert rsa_only.returncode == 0, rsa_only.output
    assert isinstance(rsa_only.chain[0].public_key(), rsa.RSAPublicKey)
    assert rsa_only.chain == [pki.example_rsa.cert, pki.intermediate.cert]
    listener.server.outcome()

    ecdsa = s_client(listener.server.port, "example.com", tls_version, "-sigalgs", "ECDSA+SHA256")
    assert ecdsa.returncode == 0, ecdsa.output
    assert isinstance(ecdsa.chain[0].public_key(), ec.EllipticCurvePublicKey)
    assert ecdsa.chain == [pki.example_ecdsa.cert, pki.ecdsa_intermediate.cert]  # its own intermediate
    listener.server.outcome()


def test_default_client_prefers_ecdsa_when_both_are_configured(listener: Listener) -> None:
    leaf = python_handshake(listener.server.port, "example.com")
    assert isinstance(leaf.public_key(), ec.EllipticCurvePublicKey)
    default = python_handshake(listener.server.port, None)  # the default pair is RSA + ECDSA too
    assert isinstance(default.public_key(), ec.EllipticCurvePublicKey)


@pytest.mark.parametrize(
    ("cipher", "key_type"),
    [("ECDHE-RSA-AES128-GCM-SHA256", rsa.RSAPublicKey), ("ECDHE-ECDSA-AES128-GCM-SHA256", ec.EllipticCurvePublicKey)],
)
def test_tls12_cipher_choice_selects_key_type(listener: Listener, cipher: str, key_type: type) -> None:
    ctx = python_client_context(tls12_ciphers=cipher)
    for sni in ("example.com", None):
        assert isinstance(python_handshake(listener.server.port, sni, ctx).public_key(), key_type)


def test_rsa_only_certificate_serves_rsa_to_everyone(listener: Listener) -> None:
    leaf = python_handshake(listener.server.port, "wildcard.eu")
    assert isinstance(leaf.public_key(), rsa.RSAPublicKey)


def test_alpn_http11_chosen(listener: Listener) -> None:
    ctx = python_client_context()
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    python_handshake(listener.server.port, "example.com", ctx)
    assert listener.server.outcome().alpn == b"http/1.1"


def test_alpn_without_overlap_is_a_fatal_alert(listener: Listener) -> None:
    ctx = python_client_context()
    ctx.set_alpn_protocols(["h2"])
    with pytest.raises(ssl.SSLError, match="no application protocol"):
        python_handshake(listener.server.port, "example.com", ctx)
    assert listener.server.outcome().error is not None


def test_swapped_index_applies_to_next_handshake(listener: Listener, pki: Pki, ssl_spec_rows: Rows) -> None:
    port = listener.server.port
    assert common_name(python_handshake(port, "new.test")) == "localhost"
    certificates, snis = ssl_spec_rows
    added = certificate_row("c-new", pki.alt_alt, ["new.test"])
    listener.index = CertificateIndex.build(
        [*certificates, added], [*snis, *sni_rows(added)], pki.defaults, previous=listener.index
    )
    assert common_name(python_handshake(port, "new.test")) == "ssl-alt-alt.com"
    listener.index = CertificateIndex.build([], [], pki.defaults)
    assert common_name(python_handshake(port, "example.com")) == "localhost"


def test_unloadable_certificate_fails_the_handshake(pki: Pki) -> None:
    broken = {"id": "c-broken", "cert": "not a pem", "key": "nope", "snis": ["broken.test"]}
    good = certificate_row("c-good", pki.alt, ["good.test"])
    index = CertificateIndex.build([broken, good], sni_rows(broken, good), pki.defaults)
    stream = io.StringIO()
    ctx = base_context(None, index, make_sni_callback(lambda: index, ErrorLog(None, "notice", stream=stream)))
    with tls_server(ctx) as server:
        with pytest.raises(ssl.SSLError):
            python_handshake(server.port, "broken.test")
        outcome = server.outcome()
        assert outcome.error is not None
        assert outcome.entry is not None and outcome.entry.certificate_id == "c-broken"
        assert "[error]" in stream.getvalue() and "could not parse PEM certificate" in stream.getvalue()
        assert common_name(python_handshake(server.port, "good.test")) == "ssl-alt.com"


def _leaf_only_index_with_ca_store(pki: Pki) -> CertificateIndex:
    leaf_only = certificate_row("c-leaf", pki.alt, ["leaf.test"])
    leaf_only["cert"] = pki.alt.cert_pem
    index = CertificateIndex.build([leaf_only], sni_rows(leaf_only), pki.defaults)
    context = index.select("leaf.test").context
    store = context.get_cert_store()
    assert store is not None
    store.add_cert(SslX509.from_cryptography(pki.intermediate.cert))
    store.add_cert(SslX509.from_cryptography(pki.root.cert))
    return index


@pytest.mark.parametrize("auto_chain", [False, True])
def test_chain_is_exactly_the_pem_even_with_a_trust_store(pki: Pki, auto_chain: bool) -> None:
    """SSL_MODE_NO_AUTO_CHAIN: a CA store on the context (e.g. for client certificates) never extends the chain.

    The ``auto_chain`` case is the counterfactual, proving the check can fail.
    """
    index = _leaf_only_index_with_ca_store(pki)
    ctx = base_context(None, index, make_sni_callback(lambda: index, ErrorLog(None, "notice", stream=io.StringIO())))
    if auto_chain:  # the mode is the connection's, copied from the base context (SSL_set_SSL_CTX keeps it)
        ctx.clear_mode(0x8)  # SSL_MODE_NO_AUTO_CHAIN off: OpenSSL completes the chain from the entry's store
    with tls_server(ctx) as server:
        chain = s_client(server.port, "leaf.test").chain
    if auto_chain:
        assert chain[:2] == [pki.alt.cert, pki.intermediate.cert]
    else:
        assert chain == [pki.alt.cert]


def _connect(port: int, sni: str, ctx: ssl.SSLContext, session: ssl.SSLSession | None = None) -> ssl.SSLSession:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname=sni, session=session) as tls,
    ):
        assert tls.session_reused is (session is not None)
        assert tls.session is not None
        return tls.session


def test_tls12_session_resumes_across_an_index_swap(listener: Listener, pki: Pki, ssl_spec_rows: Rows) -> None:
    """Ticket keys live on the listener's base context, so a configuration change does not void sessions."""
    ctx = python_client_context(max_version=ssl.TLSVersion.TLSv1_2)
    session = _connect(listener.server.port, "example.com", ctx)
    listener.server.outcome()
    _connect(listener.server.port, "example.com", ctx, session)
    assert listener.server.outcome().error is None
    certificates, snis = ssl_spec_rows
    listener.index = CertificateIndex.build(certificates, snis, pki.defaults)
    _connect(listener.server.port, "example.com", ctx, session)
    assert listener.server.outcome().error is None
