"""x509 helpers: the reported code, chain verification (cross-checked against real handshakes), check_host
(cross-checked against ``openssl x509 -checkhost``, which calls the same X509_check_host), PEM and digests."""

from __future__ import annotations

import ipaddress
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from gateway.tls.engine.hostnames import check_host
from gateway.tls.engine.session import TlsSession
from gateway.tls.engine.verify_codes import VERIFY_ERROR_TEXT, VerifyCode, reported_verify_error, verify_error_text
from gateway.tls.engine.x509 import (
    PemError,
    TrustStore,
    build_x509_store,
    chain_digest,
    key_matches_cert,
    load_pem_chain,
    load_pem_private_key,
    sha1_fingerprint,
    sha256_fingerprint,
    verify_chain,
)
from tests.fixtures.certs import Issued, days, make_ca, make_cert
from tests.fixtures.tls_peers import client_context, pump, server_context

# -- reported code ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("errors", "expected"),
    [
        ([], (0, 0)),
        ([(22, 2), (20, 2)], (22, 2)),  # depth exceeded: 22 although 20 came last
        ([(20, 0), (21, 0)], (21, 0)),  # lone leaf
        ([(20, 1)], (20, 1)),  # untrusted root
        ([(18, 0)], (18, 0)),  # self-signed
        ([(10, 0)], (10, 0)),  # expired
        ([(20, 0), (21, 0), (10, 0)], (10, 0)),  # the last one otherwise
    ],
)
def test_reported_verify_error(errors, expected):
    assert reported_verify_error(errors) == expected


def test_depth_exceeded_flag_can_be_forced_off():
    assert reported_verify_error([(22, 2), (20, 2)], depth_exceeded=False) == (20, 2)


def test_error_texts_are_openssl3_wording():
    assert verify_error_text(21) == "unable to verify the first certificate"
    assert verify_error_text(20) == "unable to get local issuer certificate"
    assert verify_error_text(18) == "self-signed certificate"
    assert verify_error_text(10) == "certificate has expired"
    assert verify_error_text(22) == "certificate chain too long"
    for code in (2, 7, 9, 19, 23, 24, 26, 27, 28, 62):
        assert VERIFY_ERROR_TEXT[code]
    assert VerifyCode.CERT_CHAIN_TOO_LONG == 22
    assert verify_error_text(9999) == "unknown certificate verification error"


# -- verify_chain against the handshake ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chains():
    root = make_ca("Root", key_type="ec")
    int1 = make_ca("Int 1", root, key_type="ec")
    int2 = make_ca("Int 2", int1, key_type="ec")
    other = make_ca("Unrelated Root", key_type="ec")

    def expired() -> Issued:
        return make_cert("leaf.test", root, key_type="ec", not_before=days(-10), not_after=days(-1))

    # name: (identity, trusted, depth, expected (ok, code, depth))
    return {
        "ok": (make_cert("leaf.test", int1, key_type="ec"), [root], None, (True, 0, 0)),
        "ok_depth_1": (make_cert("leaf.test", int1, key_type="ec"), [root], 1, (True, 0, 0)),
        "depth_0_fails": (make_cert("leaf.test", int1, key_type="ec"), [root], 0, (False, 22, 1)),
        "lone_leaf_unknown_issuer": (make_cert("leaf.test", root, key_type="ec"), [other], None, (False, 21, 0)),
        "untrusted_root": (make_cert("leaf.test", int1, key_type="ec"), [other], None, (False, 20, 1)),
        "depth_exceeded": (make_cert("leaf.test", int2, key_type="ec"), [root], 1, (False, 22, 2)),
        "depth_exceeded_untrusted": (make_cert("leaf.test", int2, key_type="ec"), [other], 1, (False, 22, 2)),
        "self_signed": (make_cert("leaf.test", None, key_type="ec"), [root], None, (False, 18, 0)),
        "expired": (expired(), [root], None, (False, 10, 0)),
        "expired_lone_leaf": (expired(), [other], None, (False, 10, 0)),
    }


CHAIN_CASES = [
    "ok",
    "ok_depth_1",
    "depth_0_fails",
    "lone_leaf_unknown_issuer",
    "untrusted_root",
    "depth_exceeded",
    "depth_exceeded_untrusted",
    "self_signed",
    "expired",
    "expired_lone_leaf",
]


@pytest.mark.parametrize("name", CHAIN_CASES)
def test_verify_chain(chains, name):
    identity, trusted, depth, expected = chains[name]
    store = TrustStore([t.cert for t in trusted])
    assert tuple(verify_chain(identity.chain, store, depth)) == expected


@pytest.mark.parametrize("name", CHAIN_CASES)
def test_verify_chain_agrees_with_the_handshake(chains, name):
    """The same chain through a real handshake with a recording callback gives the same reported code."""
    identity, trusted, depth, _ = chains[name]
    server = TlsSession(server_context(identity), server_side=True)
    client = TlsSession(client_context(trusted, depth=depth), server_side=False, server_hostname="leaf.test")
    pump(client, server)
    ok = client.verify_code == 0
    assert tuple(verify_chain(identity.chain, TrustStore([t.cert for t in trusted]), depth)) == (
        ok,
        client.verify_code,
        client.verify_depth,
    )


def test_verify_chain_partial_chain_and_raw_store(chains):
    identity, _, _, _ = chains["ok"]
    intermediate = identity.parents[0].cert
    store = TrustStore([intermediate])
    assert not verify_chain(identity.chain, store).ok
    assert verify_chain(identity.chain, store, partial_chain=True).ok
    raw = build_x509_store([intermediate], partial_chain=True)
    assert verify_chain(identity.chain, raw).ok
    with pytest.raises(ValueError):
        verify_chain(identity.chain, raw, partial_chain=True)
    with pytest.raises(ValueError):
        verify_chain([], store)


def test_trust_store_digest_follows_content(chains):
    a = make_ca("A", key_type="ec")
    b = make_ca("B", key_type="ec")
    assert TrustStore([a.cert]).digest == TrustStore([a.cert]).digest
    assert TrustStore([a.cert]).digest != TrustStore([b.cert]).digest
    assert TrustStore.from_pem([a.cert_pem.encode() + b.cert_pem.encode()]).certificates == (a.cert, b.cert)
    assert TrustStore.system_store().digest.startswith("system")


# -- check_host ------------------------------------------------------------------------------------------------

HOST_CASES = [
    # (cn, dns SANs, ip SANs, name, expected)
    ("ignored.test", ["example.test"], [], "example.test", True),
    ("ignored.test", ["example.test"], [], "EXAMPLE.Test", True),
    ("ignored.test", ["example.test"], [], "ignored.test", False),  # CN not used when DNS SANs exist
    ("x", ["*.wild.test"], [], "a.wild.test", True),
    ("x", ["*.wild.test"], [], "a.b.wild.test", False),  # one label only
    ("x", ["*.wild.test"], [], "wild.test", False),
    ("x", ["*.test"], [], "a.test", False),  # needs two dots after the star
    ("x", ["f*.wild.test"], [], "foo.wild.test", True),  # partial wildcard allowed with flags 0
    ("x", ["a.*.test"], [], "a.b.test", False),  # star only in the leftmost label
    ("cn-only.test", None, [], "cn-only.test", True),  # CN fallback without SANs
    ("cn-only.test", None, [], "other.test", False),
    ("*.cnwild.test", None, [], "a.cnwild.test", True),
    ("cn.test", None, ["127.0.0.1"], "cn.test", True),  # iPAddress SANs do not disable the CN fallback
    ("x", ["example.test"], ["127.0.0.1"], "127.0.0.1", False),  # IP literal: iPAddress SANs not consulted
    ("127.0.0.1", None, [], "127.0.0.1", True),  # ... but compared as text with the CN
    ("x", ["127.0.0.1"], [], "127.0.0.1", True),  # ... and with DNS SANs
    ("x", ["example.test"], [], "", False),
]


def _host_leaf(cn: str, dns: list[str] | None, ips: list[str]) -> Issued:
    """A self-signed leaf with exactly these SANs: the DNS names as written (even an IP literal), then the IPs."""
    sans = [x509.DNSName(d) for d in dns or []] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    return make_cert(cn, key_type="ec", sans=sans)


@pytest.mark.parametrize(("cn", "dns", "ips", "name", "expected"), HOST_CASES)
def test_check_host(cn, dns, ips, name, expected):
    cert = _host_leaf(cn, dns, ips).cert
    assert check_host(cert, name) is expected


def test_check_host_matches_openssl_cli(tmp_path):
    for i, (cn, dns, ips, name, expected) in enumerate(HOST_CASES):
        if not name:
            continue
        leaf = _host_leaf(cn, dns, ips)
        path = tmp_path / f"c{i}.pem"
        path.write_bytes(leaf.cert_pem.encode())
        out = subprocess.run(
            ["openssl", "x509", "-in", str(path), "-noout", "-checkhost", name],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
        assert ("does match" in out and "NOT" not in out) is expected, (name, dns, cn, out)


# -- PEM, keys, digests ----------------------------------------------------------------------------------------


def test_pem_helpers():
    root = make_ca("Root", key_type="ec")
    inter = make_ca("Inter", root, key_type="ec")
    leaf = make_cert("leaf.test", inter, key_type="ec")
    chain = load_pem_chain(leaf.chain_pem)
    assert chain == [leaf.cert, inter.cert]
    key = load_pem_private_key(leaf.key_pem.encode())
    assert key_matches_cert(key, leaf.cert)
    assert not key_matches_cert(key, inter.cert)
    with pytest.raises(PemError):
        load_pem_chain("not a pem")
    with pytest.raises(PemError):
        load_pem_chain("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    with pytest.raises(PemError):
        load_pem_private_key(b"garbage")
    assert sha256_fingerprint(leaf.cert) == leaf.cert.fingerprint(hashes.SHA256()).hex()
    assert sha1_fingerprint(leaf.cert) == leaf.cert.fingerprint(hashes.SHA1()).hex()
    assert chain_digest(chain) != chain_digest(chain[::-1])
